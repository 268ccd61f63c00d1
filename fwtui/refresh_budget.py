"""How often the dashboard may redraw during steady training: a CPU budget for the UI thread.

The app shares the machine with the run it shows. On a GPU box the UI thread's few milliseconds a second
cost nothing; on a 2-core CPU box every one of them is taken from torch's OpenMP team (and the GIL), and
the run slows by about what the UI spends, so issue 4's goal (the app costs a run 2% of its tokens/s or
less) is a budget on the UI thread's CPU time. RefreshBudget measures that time (time.thread_time() on the
UI thread: plotting, layout, rendering and everything else the event loop runs) over windows of a few
seconds and stretches the steady redraw intervals when the UI went over its budget, shrinking them back
when it spent well under. Only steady redraws (new train points, new numbers) wait for it; an eval, a
pause, a failure or the end of the run show at once.

Units: shares are CPU seconds per wall second of one core (0.01 = 1% of a core); times in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

UI_CPU_BUDGET = 0.005
"""The UI thread may use 0.5% of one core in steady training. On a busy 2-core machine the run lost about
twice what the UI thread spent (its CPU time and the GIL hand-overs it causes): 1% of a core cost the run
2.3% of its tokens/s (bench/ui_overhead.py), over the goal of 2%."""

WINDOW_SECONDS = 5.0
"""The UI's CPU share is judged over windows at least this long: one chart redraw is a burst of ~10 ms."""

MAX_STRETCH = 8
"""Intervals grow to at most 8x their base (panels every 8 s, charts every 16 s), however slow the machine:
the view must keep moving."""


class RefreshBudget:
    """A stretch factor for the dashboard's steady redraw intervals, kept to a CPU budget.

    `tick()` is called from a UI-thread timer; `stretch` multiplies the base intervals. Doubling when over
    budget and halving when under half of it settles within a few windows and does not oscillate between
    two neighbouring factors (a factor is left only when the share is clearly off the budget).
    """

    def __init__(self, budget: float = UI_CPU_BUDGET, *, window: float = WINDOW_SECONDS,
                 max_stretch: int = MAX_STRETCH, cpu_clock: Callable[[], float] = time.thread_time,
                 wall_clock: Callable[[], float] = time.monotonic) -> None:
        """`cpu_clock` must read the CPU time of the thread that calls tick() (the UI thread)."""
        self.budget = budget
        self.window = window
        self.max_stretch = max_stretch
        self._cpu_clock, self._wall_clock = cpu_clock, wall_clock
        self.stretch = 1
        self.last_share: float | None = None
        """The UI thread's CPU share over the last whole window (None before one ended)."""
        self._cpu0, self._wall0 = cpu_clock(), wall_clock()

    def tick(self) -> None:
        wall = self._wall_clock()
        elapsed = wall - self._wall0
        if elapsed < self.window:
            return
        cpu = self._cpu_clock()
        share = (cpu - self._cpu0) / elapsed
        self.last_share = share
        self._cpu0, self._wall0 = cpu, wall
        if share > self.budget:
            self.stretch = min(self.max_stretch, self.stretch * 2)
        elif share < self.budget / 2:
            self.stretch = max(1, self.stretch // 2)

    def interval(self, base: float) -> float:
        """A steady redraw interval: `base` seconds stretched to keep the budget."""
        return base * self.stretch
