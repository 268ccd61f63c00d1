"""`fwtui train --seeds`, and what compares its runs: `fwtui compare --summary`, the compare screen (one colour
and a mean line with a min-max band per seed group, `t` the table) and `fwtui report RUN RUN...`, on runs the
test trains (a tiny preset on the pattern data: each run a few seconds)."""

from __future__ import annotations

import statistics
import tomllib

import pytest

from fwtui.cli import main as cli_main
from fwtui.commands.seeds import argv_for_seed, parse_seeds
from trainer.errors import ConfigError

TINY = """name = "tiny-seeds"
n_layer = 1
n_head = 2
n_embd = 16
block_size = 32
vocab_size = 50304
batch_size = 4
gradient_accumulation_steps = 1
learning_rate = 1e-2
min_lr = 1e-3
max_iters = 6
warmup_iters = 2
lr_decay_iters = 6
eval_interval = 3
eval_iters = 2
log_interval = 1
compile = false
device = "cpu"
"""


@pytest.fixture(scope="module")
def seed_runs(pattern_data, tmp_path_factory):
    """2 configs (learning rate 1e-2 and 3e-3) x 2 seeds, trained by `fwtui train --seeds`."""
    root = tmp_path_factory.mktemp("seeds")
    preset = root / "tiny-seeds.toml"
    preset.write_text(TINY)
    for name, lr in (("base", "1e-2"), ("slow", "3e-3")):
        argv = ["train", "--preset", str(preset), "--data", str(pattern_data.dir), "--set", f"learning_rate={lr}",
                "--seeds", "1337,7", "--out", str(root / "runs" / name)]
        assert cli_main(argv) == 0
    return root / "runs"


def test_seeds_train_sibling_runs_that_differ_only_by_seed(seed_runs):
    names = sorted(p.name for p in seed_runs.iterdir())
    assert names == ["base-seed1337", "base-seed7", "slow-seed1337", "slow-seed7"]
    configs = {n: tomllib.loads((seed_runs / n / "config.toml").read_text()) for n in names}
    assert configs["base-seed1337"]["seed"] == 1337 and configs["base-seed7"]["seed"] == 7
    less_seed = [{k: v for k, v in c.items() if k != "seed"} for c in configs.values()]
    assert less_seed[0] == less_seed[1] and less_seed[2] == less_seed[3] and less_seed[0] != less_seed[2]
    assert all((seed_runs / n / "ckpt.pt").is_file() for n in names)  # each a whole run


def test_bad_seeds_are_one_line(pattern_data, tmp_path):
    with pytest.raises(ConfigError, match="whole numbers separated by commas"):
        parse_seeds("1337,x")
    with pytest.raises(ConfigError, match="repeated"):
        parse_seeds("7,7")
    (tmp_path / "r-seed7").mkdir()
    preset = tmp_path / "p.toml"
    preset.write_text(TINY)
    base = ["train", "--preset", str(preset), "--data", str(pattern_data.dir), "--out", str(tmp_path / "r")]
    assert cli_main([*base, "--seeds", "1,7"]) == 2  # r-seed7 is there: never trained over
    assert cli_main([*base, "--seeds", "1,2", "--resume"]) == 2
    assert cli_main([*base, "--seeds", "1,2", "--set", "seed=3"]) == 2
    assert not (tmp_path / "r-seed1").exists()


def test_a_seeds_command_line_drops_seeds_and_out():
    argv = ["train", "--preset", "p", "--seeds", "1,2", "--out=x", "--set", "a=1"]
    assert argv_for_seed(argv, 2, "d") == ["train", "--preset", "p", "--set", "a=1", "--out", "d", "--set", "seed=2"]


def test_several_gpus_run_one_seed_a_gpu_in_child_processes(pattern_data, tmp_path, capfd, monkeypatch):
    """The per-GPU path, run on the CPU: each child sees one CUDA_VISIBLE_DEVICES and its lines are prefixed."""
    from fwtui.commands import seeds

    monkeypatch.setattr(seeds, "visible_gpus", lambda: 2)
    preset = tmp_path / "p.toml"
    preset.write_text(TINY.replace("max_iters = 6", "max_iters = 2"))
    argv = ["train", "--preset", str(preset), "--data", str(pattern_data.dir), "--seeds", "1,2",
            "--out", str(tmp_path / "g")]
    assert cli_main(argv) == 0
    out = capfd.readouterr().out
    assert "2 seeds on 2 GPUs" in out and "[seed 1 · GPU 0] " in out and "[seed 2 · GPU 1] " in out
    assert tomllib.loads((tmp_path / "g-seed2" / "config.toml").read_text())["seed"] == 2


def final_val(run_dir):
    from trainer.observe.events import Eval
    from trainer.observe.runlog import read_events

    return [e for e in read_events(run_dir / "events.jsonl") if isinstance(e, Eval)][-1].val_loss


def test_compare_summary_groups_the_seeds_and_tests_the_difference(seed_runs, capsys):
    assert cli_main(["compare", str(seed_runs), "--summary"]) == 0
    out = capsys.readouterr().out
    base = [final_val(seed_runs / f"base-seed{s}") for s in (1337, 7)]
    slow = [final_val(seed_runs / f"slow-seed{s}") for s in (1337, 7)]
    # --set learning_rate moves min_lr with it (a tenth): both keys tell the groups apart
    assert "A  learning_rate=0.01 min_lr=0.001: 2 runs (base-seed1337, base-seed7)" in out
    assert "B  learning_rate=0.003 min_lr=0.0003: 2 runs (slow-seed1337, slow-seed7)" in out
    assert f"val loss {statistics.fmean(base):.4f} ± {statistics.stdev(base):.4f}" in out
    assert f"B - A  val loss {statistics.fmean(slow) - statistics.fmean(base):+.4f} (95% interval" in out
    assert "Welch's t-test p = " in out


def test_report_of_several_runs_writes_the_table(seed_runs, tmp_path, capsys):
    assert cli_main(["report", *(str(seed_runs / n) for n in ("base-seed1337", "base-seed7", "slow-seed1337")),
                     "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "| base-seed7 | tiny-seeds | 7 |" in text
    assert "| A | learning_rate=0.01 min_lr=0.001 | 2 |" in text and "| B | learning_rate=0.003 min_lr=0.0003 | 1 |" in text
    assert "| B - A |" in text and "one run a side: no test possible" in text
    assert cli_main(["report", str(seed_runs), "--out", str(tmp_path / "all")]) == 0  # a directory of runs
    assert "| B | learning_rate=0.003 min_lr=0.0003 | 2 |" in (tmp_path / "all" / "report.md").read_text()


async def test_the_compare_screen_draws_a_band_per_group_and_t_shows_the_table(seed_runs):
    from fwtui.screens.compare import CompareApp, CompareChart
    from fwtui.screens.compare_legend import SeedTable

    paths = [str(p) for p in sorted(seed_runs.iterdir())]
    app = CompareApp(paths)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if not app.compare.reading:
                break
        runs = app.compare.runs
        assert len({r.slot for r in runs[:2]}) == 1 and len({r.slot for r in runs[2:]}) == 1  # a colour a group
        chart = app.compare.query_one(CompareChart)
        app.compare.redraw_charts_for_view()
        await pilot.pause()
        assert "seeds: mean line, dotted min-max" in chart.border_title
        legend = str(app.compare.query_one("#compare-legend").render())
        assert "min_lr=0.001  2 seeds" in legend and "min_lr=0.0003  2 seeds" in legend
        await pilot.press("t")
        await pilot.pause()
        table = app.screen
        assert isinstance(table, SeedTable) and "B - A  val loss" in table.text
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.compare
