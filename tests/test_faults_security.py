"""The security promises (issue 7, item 9) and damaged checkpoints (items 1 and 9), through the headless
CLI where a user meets them: a malicious checkpoint is refused and never unpickled, run directories are
owner-only, `fwtui serve` binds the loopback address, and any garbage in ckpt.pt falls back to ckpt.prev.pt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from fwtui.cli import build_parser, main as cli_main
from tests.fault_helpers import cli, one_error_line, train_args
from trainer.train import checkpoint as ck
from trainer.train.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def data(pattern_data):
    """The tiny model's data: tests/conftest.py write_pattern_dataset."""
    return pattern_data


# --- 9. security ---------------------------------------------------------------------------------------

class WritesAMarker:
    """Unpickling this calls Path.write_text: proof that a file was unpickled beyond weights."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_resume_refuses_a_malicious_checkpoint_and_never_falls_back(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(capsys, *train_args(run, data.dir, "max_iters=8"))[0] == 0
    assert (run / ck.PREV_FILE).is_file()  # a good previous checkpoint is there: it must not be used either
    marker = tmp_path / "marker.txt"
    good = load_checkpoint(run)
    torch.save({**good, "model": WritesAMarker(marker)}, run / ck.CKPT_FILE)
    planted = (run / ck.CKPT_FILE).read_bytes()
    for extra in ([], ["--data", str(data.dir)]):  # the run's own data (read from ckpt.pt), or given
        rc, out, err = cli(capsys, "train", "--out", str(run), "--resume", "--set", "max_iters=12", *extra)
        assert rc == 2
        one_error_line(err)
        assert "refused" in err and "unsafe" in err and str(run / ck.CKPT_FILE) in err
        assert "previous checkpoint" not in out + err
        assert not marker.exists()
        assert (run / ck.CKPT_FILE).read_bytes() == planted  # left as it was, for the user to inspect


def test_run_directories_and_everything_in_them_are_owner_only(data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir(mode=0o755)  # an --out made beforehand, readable by all: tightened
    old = os.umask(0o022)
    try:
        assert cli(capsys, *train_args(run, data.dir, "max_iters=8"))[0] == 0
    finally:
        os.umask(old)
    modes = {str(p.relative_to(tmp_path)): p.stat().st_mode & 0o777 for p in [run, *run.rglob("*")]}
    assert modes["run"] == 0o700 and modes["run/control"] == 0o700
    assert {"run/ckpt.pt", "run/ckpt.prev.pt", "run/config.toml", "run/events.jsonl"} <= set(modes)
    loose = {name: oct(mode) for name, mode in modes.items()
             if mode & 0o077 or (Path(tmp_path / name).is_dir() and mode != 0o700)}
    assert loose == {}


def test_serve_binds_the_loopback_address_unless_told_otherwise(tmp_path, monkeypatch, capsys):
    pytest.importorskip("textual_serve")
    from fwtui import serve_guard

    assert build_parser().parse_args(["serve", "RUN"]).host == "127.0.0.1"
    bound = []
    monkeypatch.setattr(serve_guard.OwnerOnlyServer, "serve", lambda self: bound.append((self.host, self.port)))
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").write_text('{"schema": "fwtui.events", "version": 1}\n')
    assert cli_main(["serve", str(run)]) == 0
    assert bound == [("127.0.0.1", 8000)] and capsys.readouterr().err == ""
    assert cli_main(["serve", str(run), "--host", "0.0.0.0"]) == 0
    assert bound[-1] == ("0.0.0.0", 8000)
    assert "anyone who sees it on the network can stop or steer this run" in capsys.readouterr().err


# --- damaged checkpoints (items 1 and 9): any garbage falls back to ckpt.prev.pt, never unpickled ---------

GARBAGE = {
    "empty": b"",
    "text": b"hello world\n",
    "repeated-byte": b"e" * 200,
    "all-bytes": bytes(range(256)) * 4,
    "pickled-int": __import__("pickle").dumps(101),
    "truncated-zip": None,  # the first 300 bytes of a real checkpoint
}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_a_damaged_checkpoint_falls_back_to_the_previous_one_or_is_one_clear_error(tmp_path, kind):
    path = tmp_path / ck.CKPT_FILE
    ck.save_checkpoint(path, {"iter_num": 1, "w": torch.ones(64, 64)})
    ck.save_checkpoint(path, {"iter_num": 2, "w": torch.ones(64, 64)})
    damaged = GARBAGE[kind] if GARBAGE[kind] is not None else path.read_bytes()[:300]
    path.write_bytes(damaged)
    warnings: list[str] = []
    assert ck.load_checkpoint(tmp_path, on_warning=warnings.append)["iter_num"] == 1
    assert len(warnings) == 1 and "unreadable" in warnings[0] and "previous checkpoint" in warnings[0]
    (tmp_path / ck.PREV_FILE).unlink()
    with pytest.raises(ck.CheckpointError, match="unreadable.*no previous checkpoint") as err:
        ck.load_checkpoint(tmp_path)
    assert "\n" not in str(err.value)
