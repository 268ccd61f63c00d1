"""Run directories: which are running, how far they got (`fwtui runs`), and the lock that says a run is live.

A trainer holds `RunLock(run_dir)` (an flock on RUN/.lock) for the whole run. The kernel drops the lock when
the process ends however it ends (SIGKILL included), so `is_running` — a non-blocking flock attempt — never
reports a dead run as live, and never needs a pid that might have been reused.
"""

from __future__ import annotations

import fcntl
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import FwtuiError
from trainer.observe.events import (CheckpointSaved, Eval, Event, Failed, Finished, HellaSwag, Progress,
                                    RunStarted, Step)
from trainer.observe.health import Finding, assess
from trainer.own_files import open_own
from trainer.runs.locks import is_locked
from trainer.observe.runlog import EVENTS_FILE, log_problem, parse_line

LOCK_FILE = ".lock"
CONFIG_FILE = "config.toml"
# A run without a lock file (written before the engine took one) counts as running while its log is
# younger than this, in seconds: longer than any quiet stretch of a healthy run (an eval, a checkpoint).
UNLOCKED_LIVE_SECONDS = 600.0
# Reading a long run's whole log to list it is wasteful: past this size only the head and tail are read.
FULL_READ_BYTES = 4 << 20
HEAD_BYTES = 256 << 10
TAIL_BYTES = 1 << 20


class RunInUseError(FwtuiError):
    """Another live process holds the run directory."""


class RunLock:
    """Hold RUN/.lock for a run's lifetime: `with RunLock(run_dir): run...`.

    Raises RunInUseError (one line, with the holder's pid) if another process already runs there. The
    file stays on disk afterwards: removing it would race with a process that just opened it.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_own(self.path, os.O_RDWR | os.O_CREAT)  # never truncated through a planted symlink
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise RunInUseError(f"{self.path.parent}: {who} is running there; attach to it with "
                                f"`fwtui attach {self.path.parent}` or pick another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


def is_running(run_dir: str | Path) -> bool | None:
    """True while a process holds the run's lock, False when none does, None when the run has no lock file."""
    return is_locked(Path(run_dir) / LOCK_FILE)


def lock_holder(run_dir: str | Path) -> int | None:
    """The pid written by the process that holds (or last held) the lock."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _read_pid(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class RunInfo:
    path: Path
    name: str
    preset: str | None
    status: str
    """"running", "finished", "stopped", "failed", or "unreadable" (then `problem` says why)."""
    iteration: int | None = None
    max_iters: int | None = None
    train_loss: float | None = None
    """The last logged training loss."""
    val_loss: float | None = None
    """The last evaluation's validation loss."""
    val_bpb: float | None = None
    """That evaluation's val loss in bits per UTF-8 byte (trainer.data.bpb); None in logs written before it."""
    tokens_seen: int | None = None
    start_time: float | None = None
    """Wall clock (epoch seconds) of the first RunStarted."""
    problem: str = ""
    """For "unreadable", why; for a run that ended without an end event, a note."""
    health: tuple[Finding, ...] | None = None
    """trainer.observe.health.assess's findings (most serious first); () when all is well, None before any step or
    eval. A log past FULL_READ_BYTES is judged on its first RunStarted and its last TAIL_BYTES."""
    checkpoint_iter: int | None = None
    """The iteration of the last checkpoint the log reports saved (where a resume continues), or None."""
    last_write: float | None = None
    """Wall clock (epoch seconds) of the log's last write: when the run last said anything."""
    hellaswag: HellaSwag | None = None
    """The last HellaSwag scoring (acc_norm, its iteration and example count), or None when none ran."""


def _read_log_events(path: Path) -> tuple[list[Event], list[Event]]:
    """(events from the head, events from the tail); both the same list when the file is small."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size <= FULL_READ_BYTES:
            events = _parse_chunk(f.read(), drop_first=False)
            return events, events
        head = _parse_chunk(f.read(HEAD_BYTES), drop_first=False, drop_last=True)
        f.seek(size - TAIL_BYTES)
        tail = _parse_chunk(f.read(), drop_first=True)
    return head, tail


def _parse_chunk(data: bytes, drop_first: bool, drop_last: bool = False) -> list[Event]:
    lines = data.decode("utf-8", errors="replace").split("\n")
    if drop_first:
        lines = lines[1:]  # starts mid-line
    if drop_last:
        lines = lines[:-1]
    return [e for e in map(parse_line, lines) if e is not None]


def _preset_of(run_dir: Path) -> str | None:
    try:
        with open(run_dir / CONFIG_FILE, "rb") as f:
            name = tomllib.load(f).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):  # a broken config.toml hides no other run
        return None
    return name if isinstance(name, str) else None


def read_run(run_dir: str | Path) -> RunInfo:
    """One run's state from RUN/events.jsonl (+ config.toml). Never raises: a broken run is "unreadable"."""
    run_dir = Path(run_dir)
    name = run_dir.resolve().name
    preset = _preset_of(run_dir)
    log = run_dir / EVENTS_FILE
    try:
        problem = log_problem(log)
        problem = f"{EVENTS_FILE} {problem}" if problem else ""
        head, tail = ([], []) if problem else _read_log_events(log)
    except FileNotFoundError:
        problem = "no events.jsonl (the run never started, or the file was removed)"
    except OSError as err:
        problem = f"cannot read events.jsonl ({err.strerror})"
    running = is_running(run_dir)
    if problem:
        return RunInfo(run_dir, name, preset, "running" if running else "unreadable", problem=problem)
    starts = [e for e in head if isinstance(e, RunStarted)]
    tail_starts = [e for e in tail if isinstance(e, RunStarted)]
    first, latest = (starts or tail_starts or [None])[0], (tail_starts or starts or [None])[-1]
    if preset is None and latest is not None:
        preset = latest.config.get("name")
    steps = [e for e in tail if isinstance(e, Step)]
    evals = [e for e in tail if isinstance(e, Eval)]
    if not evals and tail is not head:
        evals = [e for e in head if isinstance(e, Eval)]
    scored = [e for e in tail if isinstance(e, HellaSwag)] or [e for e in head if isinstance(e, HellaSwag)]
    # The run's state is its last lifecycle event: an end event after the last start means it ended.
    lifecycle = [e for e in tail if isinstance(e, (RunStarted, Finished, Failed))]
    end = lifecycle[-1] if lifecycle and not isinstance(lifecycle[-1], RunStarted) else None
    note = ""
    if isinstance(end, Failed):
        status, note = "failed", end.message
    elif isinstance(end, Finished):
        status = "finished" if end.reason == "completed" else "stopped"
    elif running:
        status = "running"
    elif running is None and time.time() - log.stat().st_mtime < UNLOCKED_LIVE_SECONDS:
        status, note = "running", "no lock file: judged live by a log written in the last 10 minutes"
    else:
        status, note = "stopped", "ended without an end event (killed, or the machine went down)"
    iters = [e.iter for e in tail if isinstance(e, (Step, Progress, Eval, Finished))]  # Progress: between log points
    judged = tail if first is None or any(e is first for e in tail) else [first, *tail]
    health = tuple(assess(judged)) if steps or evals else None
    saved = [e.iter for e in tail if isinstance(e, CheckpointSaved)]
    return RunInfo(
        run_dir, name, preset, status,
        iteration=max(iters) if iters else None, max_iters=latest.max_iters if latest else None,
        train_loss=steps[-1].loss if steps else None, val_loss=evals[-1].val_loss if evals else None,
        val_bpb=evals[-1].val_bpb if evals else None,
        tokens_seen=steps[-1].tokens_seen if steps else None,
        start_time=first.time if first else (head[0].time if head else None), problem=note, health=health,
        checkpoint_iter=saved[-1] if saved else None, last_write=log.stat().st_mtime,
        hellaswag=scored[-1] if scored else None)


def is_run_dir(path: Path) -> bool:
    return (path / EVENTS_FILE).exists() or (path / CONFIG_FILE).exists() or (path / LOCK_FILE).exists()


def scan_runs(directory: str | Path) -> list[RunInfo]:
    """Every run in `directory` (or `directory` itself when it is a run), newest first.

    FwtuiError when the directory does not exist; an empty list when it holds no runs.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FwtuiError(f"{directory}: no such directory; pass where your runs live (`fwtui runs DIR`)")
    if is_run_dir(directory):
        return [read_run(directory)]
    try:
        children = sorted(p for p in directory.iterdir() if p.is_dir() and is_run_dir(p))
    except PermissionError:
        raise FwtuiError(f"{directory}: permission denied; pass a directory you can read") from None
    runs = [read_run(p) for p in children]
    return sorted(runs, key=lambda r: (r.start_time is None, -(r.start_time or 0.0), r.name))
