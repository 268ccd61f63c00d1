"""Killed processes lose nothing: `kill -9` of a real `fwtui train` at 20 moments, and resume parity across
processes (issue 7, items 1 and 2).

Each training process here is `python -m fwtui.cli train` on a prepared directory, exactly as a user runs
it; SIGKILL gives it no chance to clean up. The checks read what a user would: RUN/events.jsonl and
RUN/ckpt.pt (loaded with weights_only=True).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import synthetic_texts, write_fineweb_parquet
from trainer.observe import events as ev
from trainer.train.checkpoint import TEMP_MARK, checkpoint_iter, load_checkpoint
from trainer.data.ingest import prepare
from trainer.observe.runlog import read_events

ROOT = Path(__file__).resolve().parents[1]
WAIT = 120.0
"""Upper bound for any one wait on a child process (a bound for a stuck child, not a timing)."""

# cpu-tiny with one narrow layer (a 10 MB checkpoint) and a checkpoint at every step boundary, so a
# random kill often lands in a save. lr_decay_iters is fixed so that changing max_iters at the end does
# not change the learning-rate schedule.
KILL_SETS = ["max_iters=1000", "lr_decay_iters=1000", "warmup_iters=2", "eval_interval=1", "eval_iters=1",
             "log_interval=1", "always_save_checkpoint=true", "batch_size=2", "block_size=32", "n_layer=1",
             "n_embd=16"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A prepared dataset directory, made once: each child then starts in python + torch import time."""
    base = tmp_path_factory.mktemp("faults-data")
    parquet = write_fineweb_parquet(base / "corpus.parquet", synthetic_texts(200), row_group_size=50)
    return prepare([parquet], base / "prepared", val_fraction=0.1).dir


def child_env() -> dict[str, str]:
    # One intra-op thread: every child computes the same floats in the same order (parity), and the
    # children do not fight the test process for the two cores.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def train_cmd(run: Path, data: Path | None, sets: list[str], resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "fwtui.cli", "train", "--out", str(run)]
    if resume:
        cmd.append("--resume")
    else:
        cmd += ["--preset", "cpu-tiny", "--data", str(data)]
    for item in sets:
        cmd += ["--set", item]
    return cmd


def start(cmd: list[str], stderr_path: Path) -> subprocess.Popen:
    with open(stderr_path, "wb") as err:
        return subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=err)


def events_of(run: Path) -> list[ev.Event]:
    return read_events(run) if (run / "events.jsonl").exists() else []


def temp_files(run: Path) -> list[Path]:
    return sorted(p for p in run.glob(f"*{TEMP_MARK}*")) if run.is_dir() else []


def wait_until(proc: subprocess.Popen, condition, what: str, pause: float = 0.02) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert proc.poll() is None, f"the child exited (status {proc.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(pause)


def last_checkpoint_reported(events: list[ev.Event]) -> int | None:
    saved = [e.iter for e in events if isinstance(e, ev.CheckpointSaved)]
    return saved[-1] if saved else None


@pytest.mark.slow
def test_kill_9_at_20_moments_then_resume_continues_from_the_last_complete_checkpoint(prepared, tmp_path):
    """20 SIGKILLs of `fwtui train`: 5 while a checkpoint temp file exists (mid-save, guaranteed), 5 at a
    random delay after launch (import, setup, checkpoint load or training), 10 at a random delay after
    the run started. After each: ckpt.pt loads with no fallback, and is the last checkpoint the run
    reported or the one after it (saved, killed before its event was written); the next process resumes
    exactly there (or at a newer complete temp file the kill left: it becomes ckpt.pt), removes an orphan
    temp file cut short with a warning, and recomputes any lost step bitwise."""
    rng = random.Random(20261123)
    run = tmp_path / "run"
    expected_start: int | None = None  # the iteration the next process must resume at
    orphans_left = 0
    runs_started = 0
    for kill in range(20):
        resume = (run / "ckpt.pt").exists()
        mode = ("mid-save", "after-launch", "after-start", "after-start")[kill % 4]
        logged = events_of(run)
        before, seen = sum(isinstance(e, ev.RunStarted) for e in logged), len(logged)
        orphans = temp_files(run)
        orphans_left += bool(orphans)
        proc = start(train_cmd(run, prepared, KILL_SETS, resume=resume), tmp_path / f"stderr-{kill}.txt")
        try:
            def started() -> bool:
                return sum(isinstance(e, ev.RunStarted) for e in events_of(run)) > before

            if mode == "after-launch":
                time.sleep(rng.uniform(0.3, 3.0))
            else:
                wait_until(proc, started, "RunStarted")
                if mode == "mid-save":
                    wait_until(proc, lambda: bool(set(temp_files(run)) - set(orphans)), "a save", pause=0.0005)
                else:
                    time.sleep(rng.uniform(0.0, 1.5))
            alive = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait(WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr = (tmp_path / f"stderr-{kill}.txt").read_text()
        assert alive, f"kill {kill}: the child ended by itself: {stderr}"
        assert "Traceback" not in stderr and "fwtui:" not in stderr, stderr

        events = events_of(run)
        new = events[seen:]
        if any(isinstance(e, ev.RunStarted) for e in new):
            runs_started += 1
            this_start = next(e for e in new if isinstance(e, ev.RunStarted))
            # The process resumed exactly at the checkpoint found after the previous kill.
            assert this_start.start_iter == (expected_start or 0), (kill, this_start.start_iter, expected_start)
            if orphans:  # each one said: removed (cut short), or used as the newest checkpoint (complete)
                assert all(any(isinstance(e, ev.Warning) and orphan.name in e.message for e in new)
                           for orphan in orphans)
        if (run / "ckpt.pt").exists():
            fallbacks: list[str] = []
            ckpt = load_checkpoint(run, on_warning=fallbacks.append)  # weights_only=True
            assert fallbacks == [], fallbacks  # ckpt.pt itself is complete: never a corrupt load
            # Complete checkpoints only: the last one known (reported in the log, or loaded after the previous
            # kill), or the one after it, saved by a process the kill cut off before it logged the event.
            known = [k for k in (last_checkpoint_reported(events), expected_start) if k is not None]
            assert ckpt["iter_num"] in ({max(known), max(known) + 1} if known else {1}), \
                (kill, ckpt["iter_num"], known)
            assert ckpt["iter_num"] >= (expected_start or 0)
            # A temp file the kill left complete (after its write, before its rename) is the newest checkpoint:
            # the next start makes it ckpt.pt (trainer.train.leftovers) and resumes there.
            whole = [checkpoint_iter(t) for t in temp_files(run) if checkpoint_iter(t) is not None]
            expected_start = max([ckpt["iter_num"], *whole])

    assert runs_started >= 15  # the 15 kills after RunStarted at least
    assert orphans_left >= 1  # some kills did land inside a save

    # The last resume runs to the end.
    final_iters = expected_start + 3
    proc = start(train_cmd(run, None, [f"max_iters={final_iters}"], resume=True), tmp_path / "stderr-final.txt")
    assert proc.wait(WAIT) == 0, (tmp_path / "stderr-final.txt").read_text()
    events = events_of(run)
    assert events[-1].kind == "finished" and events[-1].reason == "completed" and events[-1].iter == final_iters
    assert [e for e in events if isinstance(e, ev.RunStarted)][-1].start_iter == expected_start
    assert load_checkpoint(run)["iter_num"] == final_iters and temp_files(run) == []

    # Every line of the log is whole (a kill mid-line must not swallow the next process's first event).
    lines = (run / "events.jsonl").read_text().splitlines()
    for line in lines:
        json.loads(line)
    # A step recomputed after a kill gives the bitwise same loss (data position, RNG and optimizer restored).
    losses: dict[int, set[float]] = {}
    for e in events:
        if isinstance(e, ev.Step):
            losses.setdefault(e.iter, set()).add(e.loss)
    assert all(len(values) == 1 for values in losses.values()), \
        {it: values for it, values in losses.items() if len(values) > 1}
    assert sorted(losses) == list(range(final_iters))


PARITY_SETS = ["lr_decay_iters=12", "warmup_iters=2", "eval_interval=3", "eval_iters=1", "log_interval=1",
               "batch_size=2", "block_size=32", "dropout=0.1"]


def test_resume_in_a_new_process_gives_bitwise_equal_losses_and_data_position(prepared, tmp_path):
    """12 steps in one process against 6, then `--resume` for 6 more in a new process: the Step losses
    in events.jsonl are bitwise equal, and so are the final weights; the data position is restored."""
    n = 12
    straight, split = tmp_path / "straight", tmp_path / "split"
    a = start(train_cmd(straight, prepared, PARITY_SETS + [f"max_iters={n}"]), tmp_path / "a.txt")
    b = start(train_cmd(split, prepared, PARITY_SETS + [f"max_iters={n // 2}"]), tmp_path / "b.txt")
    assert b.wait(WAIT) == 0, (tmp_path / "b.txt").read_text()
    half = load_checkpoint(split)
    assert half["iter_num"] == n // 2 and half["data_position"]["position"] == n // 2
    c = start(train_cmd(split, None, [f"max_iters={n}"], resume=True), tmp_path / "c.txt")
    assert c.wait(WAIT) == 0, (tmp_path / "c.txt").read_text()
    assert a.wait(WAIT) == 0, (tmp_path / "a.txt").read_text()

    def steps(run: Path) -> dict[int, float]:
        return {e.iter: e.loss for e in read_events(run) if isinstance(e, ev.Step)}

    split_events = read_events(split)
    assert [e.start_iter for e in split_events if isinstance(e, ev.RunStarted)] == [0, n // 2]
    assert steps(split) == steps(straight) and sorted(steps(split)) == list(range(n))
    one, two = load_checkpoint(straight), load_checkpoint(split)
    assert one["data_position"] == two["data_position"] and two["data_position"]["position"] == n
    assert all(torch.equal(one["model"][k], two["model"][k]) for k in one["model"])
    final = {run: [e for e in read_events(run) if isinstance(e, ev.Eval)][-1].val_loss for run in (straight, split)}
    assert final[straight] == final[split]


def test_a_line_torn_by_a_kill_does_not_swallow_the_next_process_first_event(tmp_path):
    from trainer.observe.runlog import EventLogWriter

    writer = EventLogWriter(tmp_path)
    writer(ev.Warning(message="before the kill"))
    writer.close()
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"kind":"step","iter":7,"lo')  # the killed writer's last, unfinished line
    writer = EventLogWriter(tmp_path)  # the resumed process
    writer(ev.Warning(message="first after the resume"))
    writer.close()
    assert [e.message for e in read_events(tmp_path)] == ["before the kill", "first after the resume"]
