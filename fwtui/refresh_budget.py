"""How often the dashboard may redraw during steady training: a CPU budget for the UI thread, within ceilings.

The app shares the machine with the run it shows. On a 2-core CPU box every millisecond the UI thread spends
is taken from torch's OpenMP team (and the GIL), and the run slows by about what the UI spends, so issue 4's
goal (the app costs a run 2% of its tokens/s or less) is a budget on the UI thread's CPU time. RefreshBudget
measures that time (time.thread_time() on the UI thread: plotting, layout, rendering and everything else the
event loop runs) over windows of a few seconds and stretches the steady redraw intervals when the UI went over
its budget, shrinking them back when it spent well under.

A view must still move, so every stretched interval stops at a ceiling that depends on where the run is
(`RedrawCeilings`, chosen by `ceilings_for`):

  * the numbers (header and text panels): at least every 2 s in every mode;
  * the charts: at least every 2 s when the run is on a GPU (the UI's CPU time costs the GPU nothing) or in
    another process (`fwtui attach`, `fwtui serve`, `fwtui view`: this process is not the run's);
  * only a run on the CPU in this very process may have its chart redraws stretched, and to 10 s at most.

Only steady redraws (new train points, new numbers) wait; an eval, a pause, a failure or the end of the run
show at once. Units: shares are CPU seconds per wall second of one core (0.01 = 1% of a core); times in s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

UI_CPU_BUDGET = 0.005
"""The UI thread may use 0.5% of one core in steady training. On a busy 2-core machine the run lost about
twice what the UI thread spent (its CPU time and the GIL hand-overs it causes): 1% of a core cost the run
2.3% of its tokens/s (bench/ui_overhead.py), over the goal of 2%."""

WINDOW_SECONDS = 5.0
"""The UI's CPU share is judged over windows at least this long: one chart redraw is a burst of ~10 ms."""

MAX_STRETCH = 8
"""The stretch factor doubles to at most 8; the ceilings below bound the intervals it makes."""

NUMBERS_CEILING_SECONDS = 2.0
"""The header and text panels redraw at least this often in steady training, whatever the mode."""

CHARTS_CEILING_SECONDS = 2.0
"""Charts redraw at least this often when the run is on a GPU or in another process."""

CPU_RUN_CHARTS_CEILING_SECONDS = 10.0
"""Charts of a CPU run in this process redraw at least this often: the longest a curve may stand still."""


@dataclass(frozen=True)
class RedrawCeilings:
    """The longest steady redraw intervals allowed, in seconds, and the mode they belong to (for people)."""

    numbers: float
    charts: float
    mode: str
    """"CPU run in this process", "GPU run in this process", "run in another process"."""


def ceilings_for(*, device: str | None, in_process: bool) -> RedrawCeilings:
    """The ceilings for a run on `device` ("cpu", "cuda:0", ...; None before RunStarted says) shown by
    this process (`in_process`: the app's own worker) or by a viewer of another process."""
    if not in_process:
        return RedrawCeilings(NUMBERS_CEILING_SECONDS, CHARTS_CEILING_SECONDS, "run in another process")
    if device is not None and device.startswith("cpu"):
        return RedrawCeilings(NUMBERS_CEILING_SECONDS, CPU_RUN_CHARTS_CEILING_SECONDS, "CPU run in this process")
    # A GPU run, or a device not known yet (tokenizing, before RunStarted: no curve to draw then).
    return RedrawCeilings(NUMBERS_CEILING_SECONDS, CHARTS_CEILING_SECONDS, "GPU run in this process")


class RefreshBudget:
    """A stretch factor for the dashboard's steady redraw intervals, kept to a CPU budget, within ceilings.

    `tick()` is called from a UI-thread timer; `numbers(base)` and `charts(base)` are the stretched intervals.
    Doubling when over budget and halving when under half of it settles within a few windows and does not
    oscillate between two neighbouring factors (a factor is left only when the share is clearly off budget).
    `ceilings` may be replaced once the run's device is known (the dashboard does so on RunStarted).
    """

    def __init__(self, budget: float = UI_CPU_BUDGET, *, ceilings: RedrawCeilings | None = None,
                 window: float = WINDOW_SECONDS, max_stretch: int = MAX_STRETCH,
                 cpu_clock: Callable[[], float] = time.thread_time,
                 wall_clock: Callable[[], float] = time.monotonic) -> None:
        """`cpu_clock` must read the CPU time of the thread that calls tick() (the UI thread)."""
        self.budget = budget
        self.ceilings = ceilings or ceilings_for(device=None, in_process=True)
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

    def numbers(self, base: float) -> float:
        """The steady interval of the header and text panels: `base` seconds stretched, at most the ceiling."""
        return _within(base * self.stretch, base, self.ceilings.numbers)

    def charts(self, base: float) -> float:
        """The steady interval of the charts: `base` seconds stretched, at most the mode's ceiling."""
        return _within(base * self.stretch, base, self.ceilings.charts)


def _within(stretched: float, base: float, ceiling: float) -> float:
    # A base above the ceiling is kept as it is: the ceiling limits the stretch, never speeds up a base.
    return min(stretched, max(base, ceiling))
