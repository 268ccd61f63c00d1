"""Issue 20, section 2, from the command line: what a newcomer typed in the first hour, each case as typed.

`fwtui launch`, `fwtui train --demo`, an app option before another command, --text-column on train and plan,
no run directory left by data that cannot train, and the `runs` / `presets` tables at 80 and 120 columns.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fwtui.cli import main, parse
from tests.conftest import synthetic_texts, write_fineweb_parquet
from trainer.config import all_presets
from tests.test_runs import make_run
from trainer.observe.events import Finished

import pyarrow as pa
import pyarrow.parquet as pq

TINY = ["--set", "max_iters=2", "--set", "eval_iters=1", "--set", "batch_size=2", "--set", "block_size=32",
        "--set", "warmup_iters=1", "--set", "log_interval=1"]


def body_parquet(path: Path) -> Path:
    """FineWeb-like text under the column `body`, not `text`."""
    texts = synthetic_texts(60)
    pq.write_table(pa.table({"id": list(range(len(texts))), "body": texts}), path)
    return path


def test_launch_is_the_app_with_its_options(monkeypatch) -> None:
    args = parse(["launch", "--demo", "--preset", "cpu-tiny"])
    assert args.command is None and args.demo and args.preset == "cpu-tiny"
    assert parse(["--demo", "launch"]).demo  # before or after the word: the app's options either way
    opened = []
    import fwtui.commands.app as app_command

    monkeypatch.setattr(app_command, "main", lambda args: opened.append(args) or 0)
    assert main(["launch", "--preset", "cpu-tiny"]) == 0
    assert opened and opened[0].preset == "cpu-tiny"


def test_an_app_option_before_a_command_is_refused_in_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--demo", "train", "--preset", "cpu-tiny"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--demo before `train` would be ignored" in err and "fwtui train --demo" in err
    assert parse(["--debug", "runs"]).debug  # the options every command takes may come first


def test_train_demo_trains_cpu_tiny_on_the_demo_corpus(demo_parquet, home, monkeypatch, capsys) -> None:
    from trainer.data.demo import default_path

    monkeypatch.setenv("FWTUI_CACHE_DIR", str(home / "cache"))
    default_path().parent.mkdir(parents=True)
    shutil.copy(demo_parquet, default_path())  # as the first `fwtui --demo` leaves it
    assert main(["train", "--demo", "--out", str(home / "runs" / "demo"), *TINY]) == 0
    out = capsys.readouterr().out
    assert "completed at iter 2" in out
    assert "cpu-tiny" in (home / "runs" / "demo" / "config.toml").read_text()
    assert main(["train", "--demo", "--data", str(demo_parquet)]) == 2
    assert "--demo trains on the demo corpus: drop --data" in capsys.readouterr().err


def test_text_column_is_taken_by_train_and_plan(home, capsys) -> None:
    data = body_parquet(home / "body.parquet")
    assert main(["plan", "--preset", "cpu-tiny", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "has no column 'text'" in err and "its text columns: body" in err and "--text-column NAME" in err
    assert main(["plan", "--preset", "cpu-tiny", "--data", str(data), "--text-column", "body"]) == 0
    capsys.readouterr()
    assert main(["train", "--preset", "cpu-tiny", "--data", str(data), "--text-column", "body",
                 "--out", str(home / "runs" / "body"), *TINY]) == 0
    assert "completed at iter 2" in capsys.readouterr().out


def test_data_that_cannot_train_leaves_no_run_directory(home, capsys) -> None:
    data = body_parquet(home / "body.parquet")
    for bad in ("/missing.parquet", str(data)):
        assert main(["train", "--preset", "cpu-tiny", "--data", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fwtui: error:") and err.count("\n") == 1
    assert not (home / "runs").exists()


def table_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("│")]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("│")[1:-1]]


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("gpu", [None, "RTX 4070"])
def test_presets_fit_the_width_without_cutting_a_value(width, gpu, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    assert main(["presets"] + (["--gpu", gpu] if gpu else [])) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= width
    assert "…" not in out
    header = next(line for line in out.splitlines() if line.startswith("┃"))
    assert all(name.strip() for name in header.split("┃")[1:-1])  # every column has its header
    rows = table_lines(out)
    names = [cells(row)[0] for row in rows]
    assert sorted(names) == sorted(p.name for p in all_presets())  # each name whole: all 15 told apart
    if gpu:
        assert "fits?" in header and all("GB" in cells(row)[-1] for row in rows)
    if width == 80:
        assert "not shown at 80 columns: source" in out


def test_presets_piped_without_columns_are_not_cut_at_80(monkeypatch, capsys) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    width = max(len(line) for line in out.splitlines())
    assert 80 < width <= 120 and "…" not in out and "recipe" in out


@pytest.mark.parametrize("width", [80, 120])
def test_runs_keep_status_iteration_and_losses_readable(width, tmp_path, monkeypatch, capsys) -> None:
    for name in ("rtx4070-12gb-20261206-101500", "rtx4070-12gb-20261206-143000"):
        make_run(tmp_path, name, Finished(iter=3, reason="stopped", seconds=3.0), preset="rtx4070-12gb")
    monkeypatch.setenv("COLUMNS", str(width))
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= width and "…" not in out  # health lines wrap too
    for row in table_lines(out):
        assert "rtx4070-12gb-20261206-" in row  # whole names: the two runs told apart
        assert "stopped" in row and "3 / 200" in row and "3.5000" in row


README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_presets_listing_is_the_real_command(home, monkeypatch, capsys) -> None:
    """The README's block is `COLUMNS=160 fwtui presets` as it prints today: every preset, the recipe column."""
    text = README.read_text(encoding="utf-8")
    start = text.index("$ COLUMNS=160 fwtui presets\n") + len("$ COLUMNS=160 fwtui presets\n")
    block = text[start:text.index("```", start)]
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["presets"]) == 0
    printed = "\n".join(line.rstrip() for line in capsys.readouterr().out.splitlines()) + "\n"
    assert block == printed
    assert len(table_lines(block)) == len(all_presets()) and "recipe" in block


def test_readme_says_where_the_demo_is_and_how_to_print_its_size(demo_parquet, home, monkeypatch, capsys) -> None:
    from trainer.data.demo import default_path

    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "~/.cache/fwtui/data/demo/python-X.Y-stdlib-docstrings.parquet" in text
    assert "differs between machines" in text and "`fwtui prepare --demo --count` prints yours" in text
    assert "fwtui train --demo" in text
    monkeypatch.setenv("FWTUI_CACHE_DIR", str(home / "cache"))
    default_path().parent.mkdir(parents=True)
    shutil.copy(demo_parquet, default_path())
    assert main(["prepare", "--demo", "--count"]) == 0
    out = capsys.readouterr().out
    assert f"demo corpus: {default_path()}" in out and "tokens (exact) in" in out and "documents" in out
