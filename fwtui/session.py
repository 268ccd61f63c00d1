"""The engine worker: one Textual thread worker runs trainer.runs.launch.run_training and posts its events.

The sink puts each event in a mailbox (fwtui.mailbox: a deque append, and now and then a thread-safe
`app.post_message` that returns at once), so the trainer never waits on the UI. torch and trainer.runs.launch are
imported inside the worker: the setup screen never pays for them. The thread is the trainer's until the
trainer returns: the app asks it to stop only through `controls`. TensorBoard and W&B, when asked for, are
extra sinks beside the mailbox, on threads of their own (trainer.observe.trackers, as in `fwtui train`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.app import App

from fwtui.mailbox import EventMailbox
from fwtui.messages import EngineDone, EventsWaiting
from trainer.observe.events import Event, Failed, RunStarted


@dataclass
class RunArgs:
    """What run_training needs (trainer.runs.launch.RunRequest's fields), kept free of torch imports."""

    preset: Any
    """A preset name, a path, or a RunConfig; None to continue a run with its own RUN/config.toml."""
    data: str | None
    """None on resume: the data the run trained on."""
    out: Path | None = None
    overrides: list[str] = field(default_factory=list)
    peak_tflops: float | None = None
    resume: bool = False
    """Continue `out` from its checkpoint: the engine's `fwtui train --out RUN --resume`."""
    tensorboard: str | None = None
    """`fwtui --tensorboard DIR`: also write the run's scalars for TensorBoard there, as `fwtui train` does."""


class EngineSession:
    """One training run inside the app: the worker, its controls, and what it reported."""

    def __init__(self, app: App, args: RunArgs, controls: Any) -> None:
        self.app = app
        self.args = args
        self.controls = controls
        self.done = threading.Event()
        """Set when run_training has returned or raised (the run's files are complete)."""
        self.run_dir: str | None = str(args.out) if args.out else None
        self.failed = False
        self.error: str | None = None
        self.worker = None
        self.mailbox = EventMailbox(self._wake_ui)
        """The run's events, waiting for the UI thread to take them (FwtuiApp.collect_events)."""

    @property
    def running(self) -> bool:
        return self.worker is not None and not self.done.is_set()

    def start(self) -> None:
        # The same as decorating with @work(thread=True, exit_on_error=False, group="engine").
        self.worker = self.app.run_worker(self._run, name="engine", group="engine", thread=True,
                                          exit_on_error=False, exclusive=True)

    def sink(self, event: Event) -> None:
        """Called on the trainer's thread for every event: note what matters here, leave it for the UI."""
        if isinstance(event, RunStarted):
            self.run_dir = event.run_dir  # run_training serves RUN/control/ for `fwtui attach`
        elif isinstance(event, Failed):
            self.failed = True
        self.mailbox.put(event)

    def _wake_ui(self) -> None:
        try:
            self.app.post_message(EventsWaiting())
        except Exception:  # noqa: BLE001 - the app is gone (terminal closed): the run goes on headless
            pass

    def _run(self) -> None:
        run_dir: str | None = None
        trackers: list = []
        try:
            from trainer.observe.events import FanOut
            from trainer.runs.launch import RunRequest, run_training

            request = RunRequest(preset=self.args.preset, data=self.args.data, out=self.args.out,
                                 overrides=list(self.args.overrides), peak_tflops=self.args.peak_tflops,
                                 resume=self.args.resume)
            trackers = self._start_trackers()
            run_dir = str(run_training(request, FanOut(self.sink, *trackers) if trackers else self.sink,
                                       self.controls))
            self.run_dir = run_dir
        except BaseException as err:  # noqa: BLE001 - an engine failure is shown, never crashes the app
            from trainer.errors import FwtuiError

            if isinstance(err, FwtuiError):
                self.error = str(err)
            else:
                self.error = f"internal error: {type(err).__name__}: {err}"
            if not self.failed:  # run_training emits Failed for its own errors; not for an import error
                self.sink(Failed(message=self.error))
        finally:
            for tracker in trackers:  # what they have queued is written before the run counts as done
                tracker.close()
            self.done.set()
            try:
                self.app.post_message(EngineDone(run_dir or self.run_dir, self.error))
            except Exception:  # noqa: BLE001 - no app to tell
                pass

    def _start_trackers(self) -> list:
        """TensorBoard (`--tensorboard DIR`) and W&B (wandb_log in a preset file) as extra sinks on threads of
        their own (trainer.observe.trackers), as `fwtui train` has them. Each line about them is a notification:
        a tracker that cannot run (its package absent) is a warning, and the run goes on without it."""
        from trainer.observe.trackers import tracker_sinks

        lines: list[str] = []
        preset = self.args.preset if isinstance(self.args.preset, str) else None  # a file may ask for W&B
        trackers = tracker_sinks(tensorboard=self.args.tensorboard, preset=preset, say=lines.append)
        started = {tracker.sink_name for tracker in trackers}
        for line in lines:  # "TensorBoard: writing to DIR ..." when it runs, "TensorBoard not written: ..." if not
            severity = "information" if any(line.startswith(f"{name}:") for name in started) else "warning"
            try:
                self.app.notify(line, severity=severity, timeout=10, markup=False)  # post_message: thread-safe
            except Exception:  # noqa: BLE001 - the app is gone: the run goes on headless
                pass
        return trackers
