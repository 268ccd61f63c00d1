"""`fwtui attach RUN`: the dashboard of a run started elsewhere, live or finished, from RUN/events.jsonl.

The events already in the log are replayed first, then new lines are read four times a second. Keys reach
the trainer through the control channel (RUN/control/, trainer.runs.control_channel); what it does comes back
through events.jsonl, so a sample asked for here shows in every viewer. `q` detaches; the run goes on.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from textual.app import App

from fwtui.screens.dashboard import DashboardScreen
from trainer.errors import FwtuiError
from trainer.observe.events import Event
from trainer.observe.runlog import EVENTS_FILE, EventLogFollower

POLL_SECONDS = 0.25
"""How often the log is read for new lines: a quarter second feels live and costs one stat and read."""


class ViewerApp(App[None]):
    """The dashboard fed from an event source: `poll()` returns the events new since the last call.

    Used by `fwtui attach` (a follower of a live log, controls through the channel) and `fwtui view`
    (a fixed list, controls=None: read-only).
    """

    TITLE = "fwtui"

    def __init__(self, poll: Callable[[], list[Event]], *, controls: Any = None, title: str = "",
                 attach: bool = False, poll_seconds: float = POLL_SECONDS, **screen_options: Any) -> None:
        super().__init__()
        self._poll_source = poll
        self.controls = controls
        self.poll_seconds = poll_seconds
        # The run is another process's (or a finished log): the UI's CPU time costs it nothing, so the
        # charts keep their 2 s ceiling (fwtui.refresh_budget.ceilings_for).
        self.dashboard = DashboardScreen(controls, title=title, attach=attach, in_process=False, **screen_options)

    def on_mount(self) -> None:
        # Pushed, not the default screen: a pushed screen gets its CSS_PATH (dashboard.tcss) loaded.
        self.push_screen(self.dashboard)
        self.poll_events()  # the replay: everything written so far, in one batch
        self.call_after_refresh(self.dashboard.redraw_now)
        self.set_interval(self.poll_seconds, self.poll_events)

    def poll_events(self) -> int:
        events = self._poll_source()
        if not events:
            return 0
        observe = getattr(self.controls, "observe", None)
        with self.batch_update():
            for event in events:
                if observe is not None:
                    observe(event)  # the control client learns paused/running from the log
                self.dashboard.feed(event)
        return len(events)


def events_path(run: str | Path) -> Path:
    """RUN/events.jsonl (or the file itself); FwtuiError with one line when there is none."""
    path = Path(run)
    log = path / EVENTS_FILE if path.is_dir() else path
    if not log.is_file():
        if path.is_dir():
            raise FwtuiError(f"{path}: no {EVENTS_FILE} here; pass a run directory made by `fwtui train` or "
                             "the app (`fwtui runs` lists them)")
        raise FwtuiError(f"{path}: no such run directory; `fwtui runs` lists the runs")
    return log


def build_attach_app(run: str | Path, **options: Any) -> ViewerApp:
    from trainer.runs.control_channel import ControlClient

    log = events_path(run)
    run_dir = log.parent
    follower = EventLogFollower(log)
    client = ControlClient(run_dir)
    app = ViewerApp(follower.poll, controls=client, title=run_dir.resolve().name, attach=True, **options)
    # A key pressed when no trainer listens (the run ended, or predates the channel) says so on screen.
    client.on_error = lambda message: app.notify(message, severity="error")
    return app


def main(args: argparse.Namespace) -> int:
    app = build_attach_app(args.run)
    app.run()
    return 0
