"""`fwtui attach RUN`: the dashboard of a run started elsewhere, live or finished, from RUN/events.jsonl.

The events already in the log are replayed first, then new lines are read four times a second. Keys reach
the trainer through the control channel (RUN/control/, trainer.runs.control_channel); what it does comes back
through events.jsonl, so a sample asked for here shows in every viewer. `q` detaches; the run goes on.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fwtui.viewer import ViewerApp
from trainer.errors import FwtuiError
from trainer.observe.runlog import EMPTY, EVENTS_FILE, EventLogFollower, log_problem
from trainer.runs.listing import is_running


def events_path(run: str | Path) -> Path:
    """RUN/events.jsonl (or the file itself); FwtuiError with one line when there is none."""
    path = Path(run)
    log = path / EVENTS_FILE if path.is_dir() else path
    if not log.is_file():
        if path.is_dir():
            raise FwtuiError(f"{path}: no {EVENTS_FILE} here; pass a run directory made by `fwtui train` or "
                             "the app (`fwtui runs` lists them)")
        raise FwtuiError(f"{path}: no such run directory; `fwtui runs` lists the runs")
    try:
        problem = log_problem(log)
    except OSError as err:
        raise FwtuiError(f"{log}: cannot read it ({err.strerror})") from None
    # A log that is not ours (or of a newer fwtui) would be followed forever, "waiting for the engine"; an
    # empty one is only waited for while a trainer holds the run's lock (it writes the header at once).
    if problem and not (problem == EMPTY and is_running(log.parent)):
        raise FwtuiError(f"{log} {problem}")
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
