"""Losing the last good checkpoint (issue 23, points 1 and 2): a save after a fallback from a damaged
ckpt.pt never links it over the good ckpt.prev.pt, a complete temp file left by a kill is the newest
checkpoint and is used, not deleted; a disk where no checkpoint fits is said before the first step or at
the first save, in words ("no space left on device", the folder, its free space), never "kept" when
nothing is. Full disks are real: a small tmpfs mounted for the test (skipped where mounting is refused).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.fault_helpers import cli, one_error_line, train_args
from trainer.errors import CheckpointError
from trainer.observe import events as ev
from trainer.observe.runlog import read_events
from trainer.train import checkpoint as ck
from trainer.train import checkpointer as checkpointer_module
from trainer.train.leftovers import recover_temps

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_MB = 10
"""The narrowed cpu-tiny's checkpoint (tests/fault_helpers.py CLI_SETS): ~0.8M parameters x 12 bytes."""

DAMAGE = {
    "empty": lambda good: b"",
    "truncated": lambda good: good[: len(good) // 2],
    "text": lambda good: b"this is not a checkpoint\n",
    "random-bytes": lambda good: os.urandom(4096),
    "a-list": None,  # a whole torch file holding a list, not a dict
}


def payload(value: float) -> dict:
    return {"model": {"w": torch.full((64, 64), value)}, "iter_num": int(value), "config": {"name": "t"}}


def damage(path: Path, kind: str) -> None:
    if DAMAGE[kind] is None:
        torch.save([1, 2, 3], path)
    else:
        path.write_bytes(DAMAGE[kind](path.read_bytes()))


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a tmpfs of the size asked for (a real full disk): small_disk(megabytes) -> its path."""
    mounted = []

    def make(megabytes: float) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(megabytes * 1024)}k", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'not root'})")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


# --- 1. the good ckpt.prev.pt survives a damaged ckpt.pt ----------------------------------------------

@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_save_after_a_fallback_keeps_the_good_previous_checkpoint(tmp_path, kind):
    path = tmp_path / ck.CKPT_FILE
    ck.save_checkpoint(path, payload(1.0))
    ck.save_checkpoint(path, payload(2.0))
    damage(path, kind)
    warnings: list[str] = []
    assert ck.load_checkpoint(tmp_path, on_warning=warnings.append)["iter_num"] == 1  # the fallback
    assert warnings and "previous checkpoint" in warnings[0]
    ck.save_checkpoint(path, payload(3.0))  # the resumed run's first save
    assert torch.load(tmp_path / ck.PREV_FILE, weights_only=True)["iter_num"] == 1  # the good one, still there
    assert ck.load_checkpoint(tmp_path, on_warning=pytest.fail)["iter_num"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [ck.PREV_FILE, ck.CKPT_FILE]


def test_the_resumed_run_never_has_the_damaged_file_as_its_previous_checkpoint(pattern_data, tmp_path, capsys,
                                                                            monkeypatch):
    """Through `fwtui train --resume`: after each save, ckpt.prev.pt is a loadable checkpoint."""
    run = tmp_path / "run"
    assert cli(capsys, *train_args(run, pattern_data.dir, "max_iters=8"))[0] == 0  # ckpt.pt 8, prev 4
    damage(run / ck.CKPT_FILE, "truncated")
    previous_iters = []
    real_save = checkpointer_module.save_checkpoint

    def save(path, data, **kw):
        size = real_save(path, data, **kw)
        previous_iters.append(ck.checkpoint_iter(Path(path).with_name(ck.PREV_FILE)))
        return size

    monkeypatch.setattr(checkpointer_module, "save_checkpoint", save)
    rc, out, err = cli(capsys, "train", "--out", str(run), "--resume", "--set", "max_iters=16")
    assert rc == 0, err
    assert "resuming from the previous checkpoint" in out
    assert previous_iters and previous_iters[0] == 4 and None not in previous_iters


KILL_AT_RENAME = """
import os, signal, sys
import torch
from trainer.train import checkpoint as ck
path = sys.argv[1] + "/ckpt.pt"
ck.save_checkpoint(path, {"model": {"w": torch.full((64, 64), 1.0)}, "iter_num": 1})
ck.save_checkpoint(path, {"model": {"w": torch.full((64, 64), 2.0)}, "iter_num": 2})
if sys.argv[2] != "intact":
    with open(path, "r+b") as f:  # ckpt.pt damaged on disk: a resume falls back to ckpt.prev.pt (iter 1)
        f.truncate(300)
real_replace = os.replace
def replace(src, dst):
    if str(dst).endswith("/ckpt.pt"):
        os.kill(os.getpid(), signal.SIGKILL)  # killed after the new file is whole and linked, before its rename
    return real_replace(src, dst)
os.replace = replace
ck.save_checkpoint(path, {"model": {"w": torch.full((64, 64), 3.0)}, "iter_num": 3})
"""


@pytest.mark.parametrize("ckpt_state", ["intact", "damaged"])
def test_a_kill_between_link_and_rename_loses_nothing_and_the_complete_temp_is_used(tmp_path, ckpt_state):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", KILL_AT_RENAME, str(tmp_path), ckpt_state], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    temps = list(tmp_path.glob(f"{ck.CKPT_FILE}{ck.TEMP_MARK}*"))
    assert len(temps) == 1  # the complete, fsynced iter-3 file
    # The good copy is never lost: ckpt.prev.pt is iter 2 (intact ckpt.pt) or still iter 1 (damaged ckpt.pt).
    assert ck.checkpoint_iter(tmp_path / ck.PREV_FILE) == (2 if ckpt_state == "intact" else 1)
    said = recover_temps(tmp_path)  # what the next start does, before loading anything
    assert len(said) == 1 and f"{temps[0].name} is a complete checkpoint (iter 3)" in said[0], said
    assert ("in place of a damaged ckpt.pt" in said[0]) == (ckpt_state == "damaged")
    assert ck.load_checkpoint(tmp_path, on_warning=pytest.fail)["iter_num"] == 3
    assert ck.checkpoint_iter(tmp_path / ck.PREV_FILE) == (2 if ckpt_state == "intact" else 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [ck.PREV_FILE, ck.CKPT_FILE]


def test_a_complete_temp_older_than_ckpt_pt_is_kept_aside_and_a_cut_one_removed(tmp_path):
    path = tmp_path / ck.CKPT_FILE
    ck.save_checkpoint(path, payload(5.0))
    older = tmp_path / f"{ck.CKPT_FILE}{ck.TEMP_MARK}1-1"
    torch.save(payload(4.0), older)
    cut = tmp_path / f"{ck.CKPT_FILE}{ck.TEMP_MARK}1-2"
    cut.write_bytes(older.read_bytes()[:-100])  # no zip directory at its end: a write cut short
    said = recover_temps(tmp_path)
    assert any("kept aside as ckpt.iter4.pt" in line for line in said), said
    assert any(line.startswith(f"removed {cut.name}") for line in said), said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.iter4.pt", ck.CKPT_FILE]
    assert ck.load_checkpoint(tmp_path)["iter_num"] == 5


def test_resume_after_a_kill_before_the_rename_continues_from_the_complete_temp(pattern_data, tmp_path, capsys):
    """`fwtui train` killed (SIGKILL) inside the save of iter 8, between its link and its rename; then
    `fwtui train --resume` starts from iter 8, not from iter 4 with iter 8's file deleted as an orphan."""
    run = tmp_path / "run"
    script = (
        "import os, signal, sys\n"
        "real = os.replace\n"
        "def replace(src, dst):\n"
        "    if str(dst).endswith('/ckpt.pt') and os.path.exists(str(dst)):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"  # the second save (iter 8)
        "    return real(src, dst)\n"
        "os.replace = replace\n"
        "from fwtui.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", script, *train_args(run, pattern_data.dir, "max_iters=12")],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert ck.checkpoint_iter(run / ck.CKPT_FILE) == 4
    rc, out, err = cli(capsys, "train", "--out", str(run), "--resume")
    assert rc == 0, err
    assert "is a complete checkpoint (iter 8)" in out and "it is now ckpt.pt" in out
    started = [e for e in read_events(run) if isinstance(e, ev.RunStarted)][-1]
    assert started.start_iter == 8


# --- 2. a disk where no checkpoint fits --------------------------------------------------------------------

def test_a_real_enospc_in_a_save_says_no_space_left_naming_the_folder(small_disk, monkeypatch):
    disk = small_disk(1)  # 1 MB; the checkpoint is 4 MB
    path = disk / ck.CKPT_FILE
    ck.save_checkpoint(path, payload(1.0))
    before = path.read_bytes()
    # The space check passes (another process fills the disk between the check and the write).
    monkeypatch.setattr(ck, "check_free_space", lambda *a, **kw: None)
    big = {"model": {"w": torch.zeros(1024, 1024)}, "iter_num": 2}
    with pytest.raises(CheckpointError) as err:
        ck.save_checkpoint(path, big)
    message = str(err.value)
    assert f"no space left on device in {disk} (" in message and " free, the checkpoint needs about" in message
    assert "unexpected pos" not in message and "inline_container" not in message
    assert "the previous checkpoint is kept" in message
    assert path.read_bytes() == before and sorted(p.name for p in disk.iterdir()) == [ck.CKPT_FILE]
    path.unlink()
    with pytest.raises(CheckpointError) as err:  # with nothing saved yet, the line says so
        ck.save_checkpoint(path, big)
    assert "kept" not in str(err.value) and f"no checkpoint is saved in {disk} yet" in str(err.value)


def test_a_disk_where_no_checkpoint_fits_is_refused_before_the_first_step(pattern_data, small_disk, capsys):
    run = small_disk(CHECKPOINT_MB / 2) / "run"
    rc, out, err = cli(capsys, *train_args(run, pattern_data.dir))
    assert rc == 2
    one_error_line(err)
    assert f"free in {run}: a checkpoint of this model is ≈ " in err and "no checkpoint of this run could be saved" \
        in err and "--out on a larger disk" in err
    assert not [e for e in read_events(run) if isinstance(e, ev.Step)]  # not one step trained for nothing


@pytest.mark.parametrize("how", ["checked", "raced"])
def test_a_first_save_that_fails_stops_the_run_and_never_claims_a_kept_checkpoint(pattern_data, small_disk, capsys,
                                                                               monkeypatch, how):
    """The disk fills up after the start (another job): the first save fails, and the run stops there with
    one line, instead of training on with nothing saved. `raced`: the space check passed, the write itself
    met ENOSPC."""
    from trainer.train.loop import Trainer

    disk = small_disk(3 * CHECKPOINT_MB)
    run = disk / "run"
    original = Trainer._emit_step

    def emit_step(self, it, *args):
        original(self, it, *args)
        if it == 1:  # fill the disk, leaving 1 MB
            filler = disk / "filler"
            with open(filler, "wb") as f:
                f.write(b"\0" * max(shutil.disk_usage(disk).free - 1_000_000, 0))

    monkeypatch.setattr(Trainer, "_emit_step", emit_step)
    if how == "raced":
        monkeypatch.setattr(ck, "check_free_space", lambda *a, **kw: None)
    rc, out, err = cli(capsys, *train_args(run, pattern_data.dir, "max_iters=100", "lr_decay_iters=100"))
    assert rc == 2
    one_error_line(err)
    assert "the first checkpoint (iter 4) could not be saved" in err and "the run stops" in err
    assert (" free in " if how == "checked" else f"no space left on device in {run} (") in err
    assert "kept" not in err and f"no checkpoint is saved in {run} yet" in err
    assert "unexpected pos" not in err
    steps = [e.iter for e in read_events(run) if isinstance(e, ev.Step)]
    assert max(steps) < 8  # stopped at the save, not trained on to iter 100
    assert not list(run.glob(f"*{ck.TEMP_MARK}*"))
