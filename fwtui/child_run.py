"""A run in a child process: how the app trains on several GPUs.

DDP needs one process per GPU, started by torchrun, so the app cannot train them in its own worker thread.
It starts `python -m fwtui train --preset P --data D --out RUN [--set k=v ...] --gpus N` (fwtui.commands.train
checks the count and becomes torchrun: its logic is not repeated here) as a child in a session of its own
(start_new_session: a closed terminal or a dropped SSH link sends it no SIGHUP), with stdin from /dev/null
and stdout / stderr in RUN/train.stdout and RUN/train.stderr. The app then watches RUN/events.jsonl the way
`fwtui attach` does (trainer.observe.runlog.EventLogFollower) and steers the run through RUN/control/
(`ChildControls`, a ControlClient), so every face sees one run directory, whoever started it.

A child that ends without a Finished or Failed event in the log (it died before its first event, or a rank
was killed) becomes one Failed event naming its exit status and the last meaningful line of its stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from trainer.observe.events import Event, Failed, Finished, RunStarted
from trainer.observe.runlog import EVENTS_FILE, EventLogFollower
from trainer.runs.control_channel import ControlClient, is_served

STDOUT_FILE = "train.stdout"
STDERR_FILE = "train.stderr"
TAIL_BYTES = 8192
"""How much of the end of RUN/train.stderr is searched for the line that says why the child ended."""

LaunchFlags = Callable[[int], list[str]]
"""The command-line flags that ask `fwtui train` for N processes."""


def gpu_flags(count: int) -> list[str]:
    """N CUDA GPUs of this machine (`fwtui train --gpus N`)."""
    return ["--gpus", str(count)]


def cpu_process_flags(count: int) -> list[str]:
    """N gloo CPU processes (`fwtui train --nproc-cpu N`): the same torchrun path on a machine without GPUs
    (the tests' hook, FwtuiApp(launch_flags=...))."""
    return ["--nproc-cpu", str(count)]


def train_argv(preset: str, data: str, out: Path, overrides: list[str], launch: list[str],
               peak_tflops: float | None = None, tensorboard: str | None = None) -> list[str]:
    """`fwtui train`'s arguments for the choice the setup screen made (what the in-process path runs), with
    the app's own --peak-tflops and --tensorboard."""
    argv = ["train", "--preset", preset, "--data", data, "--out", str(out)]
    for override in overrides:
        argv += ["--set", override]
    if peak_tflops is not None:
        argv += ["--peak-tflops", str(peak_tflops)]
    if tensorboard is not None:
        argv += ["--tensorboard", tensorboard]
    return argv + launch


def stderr_reason(path: Path) -> str:
    """The line of a child's stderr that says why it ended: fwtui's own one-line error when there is one,
    else the last line that is not a rule of '=' or '-' (torchrun frames its failures with them)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_BYTES))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line and line.strip("=- ")]
    ours = [line for line in lines if line.startswith("fwtui: ")]
    return (ours or lines or [""])[-1][:300]


class ChildRun:
    """One `fwtui train` child: start() (from a worker thread), poll() for its events (UI thread)."""

    def __init__(self, run_dir: Path, argv: list[str]) -> None:
        self.run_dir = Path(run_dir)
        self.argv = argv
        self.proc: subprocess.Popen | None = None
        self.start_error: str | None = None
        self.follower = EventLogFollower(self.run_dir / EVENTS_FILE)  # the file itself: RUN may not exist yet
        self.events_seen = 0
        self.ended = False
        """A Finished or Failed was seen (from the log, or made here for a child that died)."""

    def start(self) -> None:
        """Make RUN (owner-only, as run_training does) and start the child in a session of its own."""
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.follower.poll()  # an earlier attempt's events in RUN are not this run's
            with open(self.run_dir / STDOUT_FILE, "ab") as out, open(self.run_dir / STDERR_FILE, "ab") as err:
                self.proc = subprocess.Popen([sys.executable, "-m", "fwtui", *self.argv], stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=err, env=env, start_new_session=True)
        except OSError as error:
            self.start_error = f"cannot start the training process in {self.run_dir}: {error.strerror or error}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def poll(self) -> list[Event]:
        """The log's events new since the last call; at the child's end without an end event, a Failed."""
        if self.start_error is not None and not self.ended:
            self.ended = True
            return [Failed(message=self.start_error)]
        exited = self.proc is not None and self.proc.poll() is not None
        events = self.follower.poll()  # read after the exit check: a child's last lines are never missed
        for event in events:
            if isinstance(event, RunStarted):
                self.ended = False  # a resume in the same log starts again
            elif isinstance(event, (Finished, Failed)):
                self.ended = True
        self.events_seen += len(events)
        if exited and not self.ended:
            self.ended = True
            events.append(Failed(message=self._death_line()))
        return events

    def _death_line(self) -> str:
        code = self.returncode
        status = f"signal {-code}" if code is not None and code < 0 else f"status {code}"
        reason = stderr_reason(self.run_dir / STDERR_FILE) or "no error line"
        where = self.run_dir / STDERR_FILE
        if self.events_seen == 0:
            return f"the training process exited ({status}) before its first event: {reason} (all of it in {where})"
        return (f"the training process ended ({status}) before the run finished: {reason} (all of it in {where}); "
                f"its last checkpoint continues it: fwtui --out {self.run_dir} --resume")

    def terminate(self) -> None:
        """SIGTERM to the child (torchrun passes it to every rank): a stop at a boundary with a checkpoint."""
        if self.running:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


class ChildControls(ControlClient):
    """The dashboard's keys for a child run: the control channel, as `fwtui attach` sends them. A stop asked
    before rank 0 takes commands (the ranks still starting) goes to the child as SIGTERM, which stops it at
    its first boundary the same way, so `q` always stops the run."""

    def __init__(self, child: ChildRun, **options: Any) -> None:
        super().__init__(child.run_dir, **options)
        self.child = child

    def stop(self, reason: str = "quit") -> None:
        if is_served(self.run_dir) or not self.child.running:
            super().stop(reason)
        else:
            self.child.terminate()
