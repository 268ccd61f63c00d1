"""A resume keeps the schedule that ran: config.toml holds it as numbers, --set changes only what it names,
any change is one warning with the rate at the resume iteration before and after, and ckpt.pt is read
once. A tiny model on the pattern data (tests/conftest.py), through trainer.runs.launch.run_training."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch

from tests.tiny_trainer_child import tiny as tiny_256
from trainer.observe import events as ev
from trainer.config import apply_overrides
from trainer.train.resume import read_run_config
from trainer.runs.launch import RunRequest, run_training
from trainer.train.schedule import lr_at

# min_lr 1e-3 and learning_rate 1e-2 (tiny's); lr_decay_iters left to follow max_iters, as in a preset.
FIRST = dict(max_iters=6, lr_decay_iters=None, warmup_iters=2, eval_interval=3)


def tiny(**changes):
    """tests/tiny_trainer_child.tiny with GPT-2's padded vocabulary (a run's config must hold it), 16 wide."""
    return tiny_256(**{"vocab_size": 50304, "n_embd": 16, "batch_size": 2, "eval_iters": 1, **changes})


class Recorder(list):
    def of(self, cls):
        return [e for e in self if isinstance(e, cls)]


def first_run(data, run):
    rec = Recorder()
    run_training(RunRequest(tiny(**FIRST), data.dir, out=run), rec.append)
    return rec


def resume(run, *sets: str):
    rec = Recorder()
    run_training(RunRequest(None, None, out=run, overrides=list(sets), resume=True), rec.append)
    return rec


def warnings_of(rec) -> list[str]:
    return [w.message for w in rec.of(ev.Warning)]


def test_config_toml_holds_the_resolved_schedule_and_the_data(pattern_data, tmp_path):
    first_run(pattern_data, tmp_path / "run")
    saved = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert (saved["max_iters"], saved["lr_decay_iters"], saved["warmup_iters"], saved["min_lr"]) == (6, 6, 2, 1e-3)
    assert saved["dataset"] == str(pattern_data.dir)
    config, data_dir = read_run_config(tmp_path / "run")
    assert config.lr_decay_iters == 6 and data_dir == str(pattern_data.dir)


def test_a_longer_resume_keeps_lr_decay_iters_so_the_rate_stays_at_min_lr(pattern_data, tmp_path):
    run = tmp_path / "run"
    first = first_run(pattern_data, run)
    assert first.of(ev.Step)[-1].iter == 5
    second = resume(run, "max_iters=12")
    steps = second.of(ev.Step)
    assert [s.iter for s in steps] == list(range(6, 12))
    # Before: lr_decay_iters followed the new max_iters and iter 6 ran at 6.9e-3, not min_lr (1e-3).
    assert {s.lr for s in steps} == {1e-3}
    saved = tomllib.loads((run / "config.toml").read_text())
    assert (saved["max_iters"], saved["lr_decay_iters"]) == (12, 6)
    stretched = tiny(**{**FIRST, "max_iters": 12, "lr_decay_iters": 12})
    assert (f"max_iters 6 -> 12; the schedule is kept: lr_decay_iters 6, from there the rate stays at min_lr "
            f"1.00e-03; --set lr_decay_iters=12 would decay over the new length instead (the rate at iter 6 "
            f"would go from 1.00e-03 to {lr_at(6, stretched):.2e})") in warnings_of(second)


def test_a_schedule_change_on_resume_warns_with_both_rates_and_runs_at_the_new_one(pattern_data, tmp_path):
    run = tmp_path / "run"
    first_run(pattern_data, run)
    second = resume(run, "max_iters=12", "lr_decay_iters=12")
    new = tiny(**{**FIRST, "max_iters": 12, "lr_decay_iters": 12})
    line = (f"the learning-rate schedule changed on resume (lr_decay_iters 6 -> 12): the rate at iter 6 goes "
            f"from 1.00e-03 to {lr_at(6, new):.2e}")
    assert line in warnings_of(second)
    assert second.of(ev.Step)[0].lr == lr_at(6, new) > 5e-3
    kinds = [e.kind for e in second]
    assert kinds.index("warning") < kinds.index("run_started")  # said before the first resumed step


def test_resuming_for_five_more_iterations_runs(pattern_data, tmp_path):
    # A warm-up as long as the run (refused before: "warmup_iters = 4: must be below lr_decay_iters (4)"),
    # then `--set max_iters=<iter + 5>` (refused before when the warm-up outlasted the new lr_decay_iters).
    run = tmp_path / "run"
    first = Recorder()
    run_training(RunRequest(tiny(max_iters=4, lr_decay_iters=None, warmup_iters=4, eval_interval=2), pattern_data.dir,
                            out=run), first.append)
    assert any("warmup_iters = 4 is as long as the run (max_iters 4)" in m for m in warnings_of(first))
    second = resume(run, "max_iters=9")
    assert [s.iter for s in second.of(ev.Step)] == list(range(4, 9))
    assert second.of(ev.Finished)[0].iter == 9
    assert any("lr_decay_iters = 4 is not after warmup_iters = 4" in m for m in warnings_of(second))


def test_overrides_on_a_resume_change_only_what_they_name():
    ran = tiny(max_iters=6000, lr_decay_iters=6000, learning_rate=6e-4, min_lr=6e-5)
    kept = apply_overrides(ran, ["max_iters=12000", "learning_rate=3e-4"], follow=False)
    assert (kept.lr_decay_iters, kept.min_lr) == (6000, 6e-5)
    fresh = apply_overrides(ran, ["max_iters=12000", "learning_rate=3e-4"])  # a new run: derived values follow
    assert (fresh.lr_decay_iters, fresh.min_lr) == (12000, pytest.approx(3e-5))


def test_resume_reads_the_checkpoint_once(pattern_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    first_run(pattern_data, run)
    reads = []
    original = torch.load

    def counting_load(f, *args, **kwargs):
        # A peek (mmap: the zip's directory and the small pickle, never the tensors' bytes), as a save makes of
        # ckpt.pt before it becomes ckpt.prev.pt, is no read of the checkpoint.
        if not kwargs.get("mmap"):
            reads.append(str(f) if isinstance(f, (str, Path)) else str(getattr(f, "name", f)))
        return original(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    second = resume(run, "max_iters=8")
    assert second.of(ev.RunStarted)[0].start_iter == 6 and second.of(ev.Finished)[0].iter == 8
    assert [path for path in reads if path.endswith(".pt")] == [str(run / "ckpt.pt")]  # before: twice


def test_resume_without_the_data_line_names_the_fix(pattern_data, tmp_path):
    run = tmp_path / "run"
    first_run(pattern_data, run)
    path = run / "config.toml"
    path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.startswith("dataset")))
    with pytest.raises(Exception, match="does not say which data the run trained on.*pass --data"):
        resume(run, "max_iters=8")
    rec = Recorder()
    run_training(RunRequest(None, pattern_data.dir, out=run, overrides=["max_iters=8"], resume=True), rec.append)
    assert rec.of(ev.Finished)[0].iter == 8
