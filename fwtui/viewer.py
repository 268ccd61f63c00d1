"""The dashboard of a run in another process, or of a finished log: an App fed by polling an event source.

`fwtui attach` (and each tab of `fwtui serve`) feeds it from a follower of a live events.jsonl; `fwtui view` from
a fixed list. Its own module, below the commands that use it: the dashboard it shows imports the compare screen,
which reads logs, so a viewer living in a command made the faces import in a circle.
"""

from __future__ import annotations

from typing import Any, Callable

from textual.app import App

from fwtui.screens.dashboard import DashboardScreen
from trainer.observe.events import Event

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
