"""Checkpoints: atomic saves that leave the old file intact, safe loads, fallback, RNG states, space checks."""

from __future__ import annotations

import os
import pickle
import random
from collections import namedtuple

import numpy as np
import pytest
import torch

from trainer.train import checkpoint as ck
from trainer.train.leftovers import recover_temps
from trainer.errors import CheckpointError


def payload(value: float) -> dict:
    return {"model": {"w": torch.full((64, 64), value)}, "iter_num": int(value), "config": {"name": "t"}}


def test_save_then_load_weights_only(tmp_path):
    path = tmp_path / "ckpt.pt"
    size = ck.save_checkpoint(path, payload(3.0))
    assert size == path.stat().st_size > 64 * 64 * 4
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    data = torch.load(path, weights_only=True)  # the format itself loads without unpickling objects
    assert data["iter_num"] == 3
    assert torch.equal(ck.load_checkpoint(tmp_path)["model"]["w"], torch.full((64, 64), 3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_second_save_keeps_the_previous_as_prev(tmp_path):
    path = tmp_path / "ckpt.pt"
    ck.save_checkpoint(path, payload(1.0))
    ck.save_checkpoint(path, payload(2.0))
    assert ck.load_checkpoint(path)["iter_num"] == 2
    assert torch.load(tmp_path / ck.PREV_FILE, weights_only=True)["iter_num"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.prev.pt", "ckpt.pt"]


def test_a_save_after_one_cut_off_between_its_link_and_its_rename_leaves_no_temp_file(tmp_path):
    """kill -9 after a save linked ckpt.prev.pt to ckpt.pt and before it renamed its new file over ckpt.pt:
    the two names are one file. The next save must still leave just the two checkpoints (rename(2) of one
    link onto another of the same file is a no-op, which once left ckpt.prev.pt.tmp-PID behind)."""
    path = tmp_path / "ckpt.pt"
    ck.save_checkpoint(path, payload(1.0))
    os.link(path, tmp_path / ck.PREV_FILE)  # the state such a kill leaves
    ck.save_checkpoint(path, payload(2.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.prev.pt", "ckpt.pt"]
    assert ck.load_checkpoint(path)["iter_num"] == 2
    assert torch.load(tmp_path / ck.PREV_FILE, weights_only=True)["iter_num"] == 1
    assert not os.path.samefile(path, tmp_path / ck.PREV_FILE)


def test_a_save_that_raises_midway_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    ck.save_checkpoint(path, payload(1.0))
    before = path.read_bytes()

    def torn_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")  # some bytes reach the temp file, then the writer dies
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", torn_save)
    with pytest.raises(CheckpointError, match="previous checkpoint is kept"):
        ck.save_checkpoint(path, payload(2.0))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left


def test_keyboard_interrupt_during_a_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    ck.save_checkpoint(path, payload(1.0))

    def interrupted(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(path, payload(2.0))
    assert ck.load_checkpoint(path)["iter_num"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_free_space_is_checked_before_writing(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    ck.save_checkpoint(path, payload(1.0))
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(ck.shutil, "disk_usage", lambda d: Usage(10**9, 10**9, 1000))
    with pytest.raises(CheckpointError, match="free"):
        ck.save_checkpoint(path, payload(2.0))
    assert ck.load_checkpoint(path)["iter_num"] == 1


def test_corrupt_checkpoint_falls_back_to_previous_with_a_warning(tmp_path):
    path = tmp_path / "ckpt.pt"
    ck.save_checkpoint(path, payload(1.0))
    ck.save_checkpoint(path, payload(2.0))
    path.write_bytes(path.read_bytes()[:300])  # truncated
    warnings: list[str] = []
    data = ck.load_checkpoint(tmp_path, on_warning=warnings.append)
    assert data["iter_num"] == 1
    assert len(warnings) == 1 and "previous checkpoint" in warnings[0]


def test_corrupt_checkpoint_without_previous_is_a_clear_error(tmp_path):
    (tmp_path / "ckpt.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="unreadable"):
        ck.load_checkpoint(tmp_path)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ck.load_checkpoint(tmp_path)


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_malicious_pickle_is_refused_not_unpickled(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {}, "evil": Exploit()}, path)
    called = []
    monkeypatch.setattr(os, "system", lambda cmd: called.append(cmd))
    with pytest.raises(CheckpointError, match="refused"):
        ck.load_checkpoint(path)
    assert called == []


def test_orphan_temp_files_are_removed(tmp_path):
    (tmp_path / "ckpt.pt").write_bytes(b"x")
    orphan = tmp_path / f"ckpt.pt{ck.TEMP_MARK}123-456"
    orphan.write_bytes(b"half")
    said = recover_temps(tmp_path)
    assert said == [f"removed {orphan.name}, left by a checkpoint save that was interrupted (the file is incomplete)"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = ck.capture_rng_state()
    ck.save_checkpoint(tmp_path / "ckpt.pt", {"rng": state})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    ck.restore_rng_state(ck.load_checkpoint(tmp_path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_unsafe_pickle_error_text_names_the_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": Exploit()}, f)  # not even a torch zip: still never executed
    with pytest.raises(CheckpointError) as err:
        ck.load_checkpoint(path)
    assert str(path) in str(err.value)


def test_sigkill_during_saves_never_leaves_a_broken_checkpoint(tmp_path):
    """20 times: a child process saves in a loop, gets SIGKILL at a random moment (often mid-write); the
    checkpoint then always loads, and holds a counter no older than the last one seen."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, torch\n"
        "from trainer.train.checkpoint import save_checkpoint\n"
        "n = int(sys.argv[2])\n"
        "while True:\n"
        "    n += 1\n"
        "    save_checkpoint(sys.argv[1], {'model': {'w': torch.full((256, 1024), float(n))}, 'iter_num': n})\n"
        "    print(n, flush=True)\n"
    )
    path = tmp_path / "ckpt.pt"
    rng = random.Random(3)
    last = 0
    proc = None
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, "-c", script, str(path), str(last)], stdout=subprocess.PIPE,
                                text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        proc.stdout.readline()  # at least one save completed
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        recover_temps(tmp_path)
        data = ck.load_checkpoint(path)
        n = data["iter_num"]
        assert n > last and torch.equal(data["model"]["w"], torch.full((256, 1024), float(n)))
        last = n
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.prev.pt", "ckpt.pt"]
