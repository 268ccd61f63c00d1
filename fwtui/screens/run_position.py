"""Where the run stands, as the dashboard shows it (a mixin of DashboardScreen, which keeps the events' state):
the iteration, and the elapsed time and ETA moving every second while it trains (fwtui.live_clock).

Issue 20: on a card where a step takes seconds and log_interval is 50, the header and the time panel stood still
for minutes, and a pause showed the last logged iteration, not the one it paused at. Now the iteration is the
boundary the run paused or stopped at, else the freshest Step or Progress; and between events a timer moves the
time panel's clocks on (at most every PANEL_REFRESH_SECONDS, stretched by the UI's CPU budget to the numbers'
ceiling, fwtui.refresh_budget: 2 s).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from fwtui.live_clock import HOLD_SECONDS, RunClock, run_clock
from fwtui.widgets.panels import TimePanel
from trainer.observe.events import Finished, Progress, RunStarted, Step

CLOCK_TICK_SECONDS = 1.0
"""How often the timer looks whether the time panel's clocks are due to move."""

wall_clock = time.time
"""The wall clock events' `time` is read against (seconds since the epoch); tests move it."""


class RunPosition:
    run: RunStarted | None
    last_step: Step | None
    progress: Progress | None
    finished: Finished | None
    paused: bool
    paused_at: int | None
    run_over: bool
    tz: Any
    refresh_budget: Any
    _ready: bool
    _last_flush: float
    _last_clock: float
    _news_is_fresh: bool = False  # the latest Step/Progress came within HOLD_SECONDS of its making (not a replay)

    def note_news(self, event: Step | Progress) -> None:
        """A Step or Progress fed: a live run's is seconds old; a replayed log's may be days old, and its clocks
        must then show what the log says, not move on from it."""
        self._news_is_fresh = wall_clock() - event.time < HOLD_SECONDS

    @property
    def iteration(self) -> int | None:
        """The iteration shown: the step boundary an ended or paused run is at (what its checkpoint and event
        say: a completed run of 70 is at 70), else the latest iteration a Step or Progress told; the run's start
        before any."""
        if self.finished is not None:
            return self.finished.iter
        if self.paused and self.paused_at is not None:
            return self.paused_at
        clock = run_clock(self.last_step, self.progress, now=0.0, moving=False)
        if clock is not None:
            return clock.iter
        return None if self.run is None else self.run.start_iter

    def run_clock_now(self) -> RunClock | None:
        """The time panel's figures as of now: moving on while the run trains, still when paused or over."""
        moving = self.run is not None and not self.run_over and not self.paused and self._news_is_fresh
        clock = run_clock(self.last_step, self.progress, now=wall_clock(), moving=moving)
        shown = self.iteration
        if clock is None or shown is None or shown == clock.iter:
            return clock
        return dataclasses.replace(clock, iter=shown)

    def show_time(self) -> None:
        self._last_clock = time.monotonic()
        self.query_one(TimePanel).show(self.run, self.last_step, self.finished, self.tz, self.run_clock_now())

    def tick_clock(self) -> None:
        """The timer's look (UI thread): move the clocks when the run trains and the last redraw is old enough."""
        if not self._ready or self.run_over or self.paused or self.last_step is None:
            return
        due = self.refresh_budget.numbers(1.0)
        if time.monotonic() - max(self._last_clock, self._last_flush) >= due:
            self.show_time()
