"""The Checkpointer alone, without a Trainer: the copy is taken before save() returns, one write at a time,
wait(), a full disk, NaN weights, the held/write seconds in the event, an abort, and kill -9 mid-write."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from trainer.errors import CheckpointError
from trainer.model.gpt import GPT, ModelArgs
from trainer.observe import events as ev
from trainer.train import checkpoint as ck
from trainer.train.leftovers import recover_temps
from trainer.train.checkpointer import Checkpointer

ROOT = Path(__file__).resolve().parents[1]
WAIT = 120.0
"""Upper bound for a wait on a child process (a bound for a stuck child, not a timing)."""

TINY = dict(vocab_size=256, block_size=16, n_layer=1, n_head=2, n_embd=32, dropout=0.0, bias=True)


class Events(list):
    def of(self, cls):
        return [e for e in self if isinstance(e, cls)]


def model_and_optimizer(seed: int = 0) -> tuple[GPT, torch.optim.AdamW]:
    torch.manual_seed(seed)
    model = GPT(ModelArgs(**TINY))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (2, 16))
    _, loss = model(x, x)
    loss.backward()
    optimizer.step()  # AdamW state (exp_avg, exp_avg_sq, step) exists now, as in a run
    return model, optimizer


def payload(model: torch.nn.Module, optimizer, it: int) -> dict:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iter_num": it,
            "fwtui": {"reason": "test"}}


def test_the_file_holds_the_state_at_save_time_not_later_changes(tmp_path):
    model, optimizer = model_and_optimizer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moments = optimizer.state_dict()["state"][0]["exp_avg"].clone()
    events = Events()
    cp = Checkpointer(tmp_path, emit=events.append)
    cp.save(5, "eval", payload(model, optimizer, 5))
    with torch.no_grad():  # training goes on: the live tensors change in place right away
        for p in model.parameters():
            p.add_(1.0)
        optimizer.state_dict()["state"][0]["exp_avg"].mul_(-3.0)
    cp.wait()
    saved = ck.load_checkpoint(tmp_path)
    assert saved["iter_num"] == 5
    assert all(torch.equal(saved["model"][k], before[k]) for k in before)
    assert torch.equal(saved["optimizer"]["state"][0]["exp_avg"], moments)
    assert not torch.equal(saved["model"]["lm_head.weight"], model.lm_head.weight.detach())
    # The tied embedding and output weights stay one tensor in the file, as a plain torch.save keeps them.
    assert saved["model"]["lm_head.weight"].data_ptr() == saved["model"]["transformer.wte.weight"].data_ptr()


def test_the_event_says_how_long_training_was_held_and_how_long_the_write_took(tmp_path):
    model, optimizer = model_and_optimizer()
    events = Events()
    cp = Checkpointer(tmp_path, emit=events.append)
    held = cp.save(3, "requested", payload(model, optimizer, 3))
    cp.wait()
    (saved,) = events.of(ev.CheckpointSaved)
    assert (saved.iter, saved.reason, saved.path) == (3, "requested", str(tmp_path / ck.CKPT_FILE))
    assert saved.held_seconds == held >= 0
    assert saved.write_seconds == saved.seconds > 0
    assert saved.bytes == (tmp_path / ck.CKPT_FILE).stat().st_size
    assert cp.last_saved_iter == 3 and not cp.writing
    # The event survives the log: the new fields are read back from events.jsonl.
    assert ev.event_from_dict(saved.to_dict()) == saved


def slowed_writes(monkeypatch, gate: threading.Event | None = None, seconds: float = 0.0) -> list[tuple]:
    """Make each torch.save of a checkpoint wait for `gate` (or sleep `seconds`); returns a log of
    ("start"/"end", iter, writers active) entries, appended by the writer threads."""
    real_save = ck.torch.save
    log: list[tuple] = []
    active = {"n": 0}
    lock = threading.Lock()

    def save(obj, f, *args, **kwargs):
        with lock:
            active["n"] += 1
            log.append(("start", obj["iter_num"], active["n"]))
        if gate is not None:
            assert gate.wait(WAIT)
        time.sleep(seconds)
        real_save(obj, f, *args, **kwargs)
        with lock:
            active["n"] -= 1
            log.append(("end", obj["iter_num"], active["n"]))

    monkeypatch.setattr(ck.torch, "save", save)
    return log


def test_one_write_at_a_time_and_a_save_waits_for_the_write_before(tmp_path, monkeypatch):
    log = slowed_writes(monkeypatch, seconds=0.05)
    model, optimizer = model_and_optimizer()
    events = Events()
    cp = Checkpointer(tmp_path, emit=events.append)
    for it in (1, 2, 3):
        cp.save(it, "eval", payload(model, optimizer, it))
        # When save() returns, the write before it is on disk and reported, and this one is under way.
        assert cp.writing and cp.covers(it)
        assert [e.iter for e in events.of(ev.CheckpointSaved)] == list(range(1, it))
    cp.wait()
    assert max(n for _, _, n in log) == 1  # never two writers at once
    assert [(kind, it) for kind, it, _ in log] == [("start", 1), ("end", 1), ("start", 2), ("end", 2),
                                                   ("start", 3), ("end", 3)]
    assert [e.iter for e in events.of(ev.CheckpointSaved)] == [1, 2, 3]
    assert ck.load_checkpoint(tmp_path)["iter_num"] == 3
    assert ck.load_checkpoint(tmp_path / ck.PREV_FILE)["iter_num"] == 2


def test_poll_never_blocks_and_wait_reports_the_write_once_it_is_done(tmp_path, monkeypatch):
    gate = threading.Event()
    slowed_writes(monkeypatch, gate=gate)
    model, optimizer = model_and_optimizer()
    events = Events()
    cp = Checkpointer(tmp_path, emit=events.append)
    cp.save(7, "eval", payload(model, optimizer, 7))
    cp.poll()  # the write is held at the gate: nothing to report, and poll returns at once
    assert events == [] and cp.writing and cp.covers(7) and cp.last_saved_iter is None
    assert not (tmp_path / ck.CKPT_FILE).exists()
    gate.set()
    cp.wait()
    assert [e.iter for e in events.of(ev.CheckpointSaved)] == [7] and not cp.writing
    cp.wait()  # nothing in flight: returns, reports nothing twice
    cp.poll()
    assert len(events) == 1 and ck.load_checkpoint(tmp_path)["iter_num"] == 7


def full_disk_on(monkeypatch, bad_iter: int) -> None:
    real_save = ck.torch.save

    def save(obj, f, *args, **kwargs):
        if obj["iter_num"] == bad_iter:
            f.write(b"PK\x03\x04" + b"\0" * 4096)  # some bytes reach the disk, then it is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ck.torch, "save", save)


def test_a_full_disk_is_a_warning_and_the_last_checkpoint_stays(tmp_path, monkeypatch):
    full_disk_on(monkeypatch, bad_iter=2)
    model, optimizer = model_and_optimizer()
    events = Events()
    cp = Checkpointer(tmp_path, emit=events.append)
    cp.save(1, "eval", payload(model, optimizer, 1))
    cp.wait()
    cp.save(2, "eval", payload(model, optimizer, 2))
    cp.wait()
    (warning,) = events.of(ev.Warning)
    assert "no space left on device in " in warning.message and "retrying at the next interval" in warning.message
    assert "previous checkpoint is kept" in warning.message
    assert [e.iter for e in events.of(ev.CheckpointSaved)] == [1] and cp.last_saved_iter == 1
    assert ck.load_checkpoint(tmp_path)["iter_num"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]  # no temp file left
    cp.save(3, "eval", payload(model, optimizer, 3))  # the next interval retries
    cp.wait()
    assert cp.last_saved_iter == 3 and ck.load_checkpoint(tmp_path)["iter_num"] == 3


def test_a_must_succeed_save_waits_for_its_write_and_raises_when_it_fails(tmp_path, monkeypatch):
    full_disk_on(monkeypatch, bad_iter=2)
    model, optimizer = model_and_optimizer()
    events = Events()
    cp = Checkpointer(tmp_path, emit=events.append)
    cp.save(1, "eval", payload(model, optimizer, 1))
    with pytest.raises(CheckpointError, match="no space left on device in "):
        cp.save(2, "stop", payload(model, optimizer, 2), must_succeed=True)
    assert [e.iter for e in events.of(ev.CheckpointSaved)] == [1]  # the write before it, reported first
    assert ck.load_checkpoint(tmp_path)["iter_num"] == 1 and not cp.writing


def test_nan_weights_are_never_written_over_the_last_good_checkpoint(tmp_path):
    model, optimizer = model_and_optimizer()
    events = Events()
    cp = Checkpointer(tmp_path, emit=events.append)
    cp.save(4, "eval", payload(model, optimizer, 4))
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
    cp.save(8, "eval", payload(model, optimizer, 8))
    cp.wait()
    assert [w.message for w in events.of(ev.Warning)] == [
        "checkpoint at iter 8 not saved: the model's weights hold NaN or inf; ckpt.pt (iter 4) is kept"]
    assert ck.load_checkpoint(tmp_path)["iter_num"] == 4
    with pytest.raises(CheckpointError, match="lower learning_rate"):
        cp.save(9, "stop", payload(model, optimizer, 9), must_succeed=True)
    assert ck.load_checkpoint(tmp_path)["iter_num"] == 4


def test_a_refusal_while_the_good_write_is_in_flight_names_that_checkpoint_as_kept(tmp_path, monkeypatch):
    """The write of iter 12 (a good state) is still on its way when bad steps refuse iter 16 (a loaded
    machine): the warning must name iter 12, which is on disk once the refusal returns, not the one before."""
    gate = threading.Event()
    slowed_writes(monkeypatch, gate=gate)
    model, optimizer = model_and_optimizer()
    events = Events()
    cp = Checkpointer(tmp_path, emit=events.append)
    gate.set()
    cp.save(8, "eval", payload(model, optimizer, 8))
    cp.wait()
    gate.clear()
    cp.save(12, "eval", payload(model, optimizer, 12))  # held at the gate
    assert cp.writing and cp.last_saved_iter == 8
    threading.Thread(target=gate.set, daemon=True).start()  # the disk catches up while refuse() waits
    cp.refuse_bad_steps(16, 2, model.state_dict())
    assert [w.message for w in events.of(ev.Warning)] == [
        "checkpoint at iter 16 not saved: the last 2 steps were not finite; ckpt.pt (iter 12) is kept"]
    assert not cp.writing and ck.load_checkpoint(tmp_path)["iter_num"] == 12


def test_an_aborted_write_leaves_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    model, optimizer = model_and_optimizer()
    events = Events()
    cp = Checkpointer(tmp_path, emit=events.append)
    cp.save(1, "eval", payload(model, optimizer, 1))
    cp.wait()
    real_save = ck.torch.save

    def save_once_aborting(obj, f, *args, **kwargs):
        while not cp._abort.is_set():  # the writer is mid-file when the third Ctrl-C comes
            time.sleep(0.005)
        return real_save(obj, f, *args, **kwargs)  # its next chunk meets the abort flag

    monkeypatch.setattr(ck.torch, "save", save_once_aborting)
    cp.save(2, "stop", payload(model, optimizer, 2))  # in flight when the interrupt comes
    cp.settle(interrupted=True)
    assert not cp.writing and cp.last_saved_iter == 1
    assert [e.iter for e in events.of(ev.CheckpointSaved)] == [1]
    assert ck.load_checkpoint(tmp_path)["iter_num"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_a_ctrl_c_while_waiting_aborts_the_write_and_removes_its_temp_file(tmp_path, monkeypatch):
    """A third Ctrl-C lands in wait(): the write is given up, and the writer is waited for until its temp
    file is gone (the process may exit right after). The interrupt is raised where the signal would raise
    it, in the wait; tests/test_faults_signals.py sends the real one to a real run."""
    model, optimizer = model_and_optimizer()
    cp = Checkpointer(tmp_path, emit=Events().append)
    cp.save(1, "eval", payload(model, optimizer, 1))
    cp.wait()
    real_save = ck.torch.save

    def save_until_aborted(obj, f, *args, **kwargs):
        while not cp._abort.is_set():
            time.sleep(0.005)
        time.sleep(0.2)  # the writer is slower than the interrupt: wait() must not return before it is through
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ck.torch, "save", save_until_aborted)
    cp.save(2, "stop", payload(model, optimizer, 2))  # in flight when the interrupt comes
    done = cp._in_flight.done
    real_wait = done.wait

    def interrupted_wait(timeout=None):
        if timeout is None:  # wait()'s own wait: the Ctrl-C arrives here
            raise KeyboardInterrupt
        return real_wait(timeout)

    monkeypatch.setattr(done, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        cp.wait()
    assert not cp.writing and cp.last_saved_iter == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]  # no temp file, right away
    assert ck.load_checkpoint(tmp_path)["iter_num"] == 1


CHILD = """
import os, sys, time
import torch
from trainer.train import checkpoint as ck
from trainer.train.checkpointer import Checkpointer

run, marker = sys.argv[1], sys.argv[2]
state = {"model": {"w": torch.arange(4096, dtype=torch.float32)}, "iter_num": 1}
cp = Checkpointer(run, emit=lambda e: print(e.kind, e.iter, flush=True))
cp.save(1, "eval", state)
cp.wait()
real_save = ck.torch.save

def stuck_save(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)  # the whole temp file is written, not yet renamed over ckpt.pt
    open(marker, "w").close()
    time.sleep(600)

ck.torch.save = stuck_save
state["model"]["w"].mul_(-1)
cp.save(2, "eval", {**state, "iter_num": 2})
time.sleep(600)  # training would go on here; the parent kills the process first
"""


def test_kill_9_during_a_write_leaves_the_previous_complete_checkpoint(tmp_path):
    run, marker = tmp_path / "run", tmp_path / "writing"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(run), str(marker)], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT
        while not marker.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never reached the second write"
            time.sleep(0.02)
        assert list(run.glob(f"ckpt.pt{ck.TEMP_MARK}*")), "the second write is in flight (its temp file exists)"
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=WAIT)
    finally:
        if child.poll() is None:
            child.kill()
    assert out.split() == ["checkpoint", "1"]
    saved = ck.load_checkpoint(run, on_warning=pytest.fail)
    assert saved["iter_num"] == 1 and torch.equal(saved["model"]["w"], torch.arange(4096, dtype=torch.float32))
    # The killed write got its whole file out (torch.save had returned): the next start uses it, as the
    # newest checkpoint, keeping iter 1 as ckpt.prev.pt (trainer.train.leftovers).
    assert "is a complete checkpoint (iter 2)" in recover_temps(run)[0]
    assert sorted(p.name for p in run.iterdir()) == ["ckpt.prev.pt", "ckpt.pt"]
    assert ck.load_checkpoint(run)["iter_num"] == 2 and ck.checkpoint_iter(run / ck.PREV_FILE) == 1
