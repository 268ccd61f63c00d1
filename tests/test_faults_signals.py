"""SIGINT, SIGTERM and SIGHUP stop a headless `fwtui train` at the next step boundary with a checkpoint and
exit 0; a second Ctrl-C during that save changes nothing; a third aborts it and leaves the previous
checkpoint intact (issue 7, item 3). Every child is a real `fwtui train` process; they run side by side.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import synthetic_texts, write_fineweb_parquet
from trainer.observe import events as ev
from trainer.train.checkpoint import TEMP_MARK, load_checkpoint
from trainer.data.ingest import prepare
from trainer.observe.runlog import read_events

ROOT = Path(__file__).resolve().parents[1]
WAIT = 120.0
"""Upper bound for any one wait on a child (a bound for a stuck child, not a timing)."""

SETS = ["max_iters=100000", "warmup_iters=2", "eval_iters=1", "log_interval=1", "batch_size=2",
        "block_size=32", "n_layer=1", "n_embd=16"]

# `fwtui train` whose checkpoint saves are held once the test arms it (MARKER.armed exists, made just before
# the first Ctrl-C): a save writes its temp file, MARKER appears, and the save waits before its rename while
# MARKER.armed exists, so the test's extra Ctrl-Cs land inside the save every time, however loaded the
# machine. An abort of the save (the third Ctrl-C) disarms it, so the writer reaches its next chunk and sees
# the abort.
HELD_STOP_SAVE = """
import os, sys, time
import torch
marker, armed = sys.argv[1], sys.argv[1] + ".armed"
real_save = torch.save
def held_save(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    if os.path.exists(armed):
        open(marker, "w").close()
        while os.path.exists(armed):
            time.sleep(0.01)
torch.save = held_save
from trainer.train import checkpointer
real_abort = checkpointer.Checkpointer.abort
def abort(self):
    if os.path.exists(armed):
        os.unlink(armed)
    real_abort(self)
checkpointer.Checkpointer.abort = abort
from fwtui.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("signals-data")
    parquet = write_fineweb_parquet(base / "corpus.parquet", synthetic_texts(200), row_group_size=50)
    return prepare([parquet], base / "prepared", val_fraction=0.1).dir


class Child:
    """One `fwtui train` process writing its stdout and stderr to files beside its run directory."""

    def __init__(self, tmp_path: Path, name: str, prepared: Path, sets: list[str], held_save: bool = False):
        self.run = tmp_path / name
        self.marker = tmp_path / f"{name}.saving"
        self.out_path, self.err_path = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        args = ["train", "--preset", "cpu-tiny", "--data", str(prepared), "--out", str(self.run)]
        for item in sets:
            args += ["--set", item]
        prefix = ["-c", HELD_STOP_SAVE, str(self.marker)] if held_save else ["-m", "fwtui.cli"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, *prefix, *args], cwd=ROOT, env=env, stdout=out, stderr=err)

    def events(self) -> list[ev.Event]:
        return read_events(self.run) if (self.run / "events.jsonl").exists() else []

    def last_step(self) -> int | None:
        steps = [e.iter for e in self.events() if isinstance(e, ev.Step)]
        return steps[-1] if steps else None

    def printed(self, text: str, times: int = 1) -> bool:
        """True once the child's stdout holds `text` at least `times` times (its lines are flushed as said)."""
        return self.out_path.read_text().count(text) >= times

    def wait_for(self, condition, what: str, pause: float = 0.02) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            assert self.proc.poll() is None, f"{self.run.name} exited early: {self.err_path.read_text()}"
            assert time.monotonic() < deadline, f"{self.run.name}: gave up waiting for {what}"
            time.sleep(pause)

    def finish(self) -> tuple[int, str, str]:
        try:
            rc = self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return rc, self.out_path.read_text(), self.err_path.read_text()


def test_sigint_sigterm_sighup_each_checkpoint_at_the_next_step_boundary_and_exit_0(prepared, tmp_path):
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    children = {sig: Child(tmp_path, sig.name, prepared, SETS + ["eval_interval=100000"]) for sig in signals}
    sent_after: dict[signal.Signals, int] = {}
    for sig, child in children.items():
        child.wait_for(lambda: (child.last_step() or 0) >= 2, "step 2")
        sent_after[sig] = child.last_step()
        child.proc.send_signal(sig)
    for sig, child in children.items():
        rc, out, err = child.finish()
        assert rc == 0, err
        assert err == ""
        assert f"{sig.name}: stopping at the next step with a checkpoint" in out
        events = child.events()
        finished = events[-1]
        assert isinstance(finished, ev.Finished) and finished.reason == "stopped", finished
        # The step under way when the signal came is finished, then the boundary after it stops the run.
        assert sent_after[sig] + 1 <= finished.iter <= sent_after[sig] + 3
        assert [e.iter for e in events if isinstance(e, ev.Step)][-1] == finished.iter - 1
        saved = [e for e in events if isinstance(e, ev.CheckpointSaved)]
        assert [(e.iter, e.reason) for e in saved] == [(finished.iter, "stop")]
        ckpt = load_checkpoint(child.run)
        assert ckpt["iter_num"] == finished.iter and ckpt["data_position"]["position"] == finished.iter
        assert f"continue with: fwtui train --out {child.run} --resume" in out


def test_a_second_ctrl_c_during_the_save_changes_nothing_and_a_third_aborts_with_the_old_checkpoint(
        prepared, tmp_path):
    twice = Child(tmp_path, "twice", prepared, SETS + ["eval_interval=2"], held_save=True)
    thrice = Child(tmp_path, "thrice", prepared, SETS + ["eval_interval=2"], held_save=True)
    for child in (twice, thrice):
        # After the checkpoint at 2, so the third Ctrl-C has an older checkpoint to keep.
        child.wait_for(lambda: any(isinstance(e, ev.CheckpointSaved) for e in child.events()), "a checkpoint")
        child.marker.with_name(child.marker.name + ".armed").touch()
        child.proc.send_signal(signal.SIGINT)
    for child, presses in ((twice, 1), (thrice, 2)):
        child.wait_for(child.marker.exists, "the stop checkpoint's save", pause=0.005)
        assert list(child.run.glob(f"ckpt.pt{TEMP_MARK}*")), "the save is in progress (its temp file exists)"
        for press in range(1, presses + 1):
            child.proc.send_signal(signal.SIGINT)
            if press < presses:  # the next press once this one was heard: two close together can arrive as one
                child.wait_for(lambda: child.printed("already stopping", times=press),
                               "the Ctrl-C heard", pause=0.005)
    # The second Ctrl-C heard, twice's save may finish; thrice's third Ctrl-C disarms its own by aborting.
    twice.wait_for(lambda: twice.printed("already stopping"), "the Ctrl-C heard", pause=0.005)
    twice.marker.with_name(twice.marker.name + ".armed").unlink()

    rc, out, err = twice.finish()
    assert rc == 0 and err == "", err
    assert "SIGINT: already stopping; the checkpoint is being written" in out
    finished = twice.events()[-1]
    assert isinstance(finished, ev.Finished) and finished.reason == "stopped"
    ckpt = load_checkpoint(twice.run)
    assert ckpt["iter_num"] == finished.iter  # saved as "stop" or, at an eval boundary, as "eval"
    assert not list(twice.run.glob(f"*{TEMP_MARK}*"))

    rc, out, err = thrice.finish()
    assert rc == 130 and err.strip() == "fwtui: interrupted", err
    assert "Traceback" not in err
    events = thrice.events()
    assert events[-1].kind == "failed" and events[-1].message == "interrupted"
    saved = [e for e in events if isinstance(e, ev.CheckpointSaved)]
    fallbacks: list[str] = []
    ckpt = load_checkpoint(thrice.run, on_warning=fallbacks.append)
    # The interrupted save left nothing: ckpt.pt is the last checkpoint saved before it, whole.
    assert fallbacks == [] and ckpt["iter_num"] == saved[-1].iter and ckpt["fwtui"]["reason"] == "eval"
    assert not list(thrice.run.glob(f"*{TEMP_MARK}*"))
