"""Run health for the live dashboard: trainer.observe.health.assess on bounded histories, not too often.

The screen hands every Step/Eval/end to `note` (cheap: appends to bounded deques) and calls `assess_if_due`
when it redraws its panels. Assessing reads every kept Step (spike medians), a few milliseconds for
HEALTH_STEPS of them, so Steps alone trigger it at most every HEALTH_SECONDS; an Eval, a non-finite loss or the
end of the run trigger it at the next redraw.
"""

from __future__ import annotations

import math
import time
from collections import deque

from trainer.observe.events import Eval, Event, Failed, Finished, RunStarted, Step
from trainer.observe.health import Finding, assess

HEALTH_SECONDS = 5.0
"""Run health is assessed at most this often from Steps alone."""

HEALTH_STEPS = 2000
"""Steps kept: the windows (spikes: 20 logs, MFU: 10 against the rest) need far fewer; more would make each
assessment slower, not better."""

HEALTH_EVALS = 500


class HealthWatch:
    def __init__(self) -> None:
        self.run: RunStarted | None = None
        self.steps: deque[Step] = deque(maxlen=HEALTH_STEPS)
        self.evals: deque[Eval] = deque(maxlen=HEALTH_EVALS)
        self.findings: list[Finding] | None = None
        """The latest assessment; None before there was anything to judge."""
        self.stale = False  # Steps came since the last assessment
        self.urgent = False  # an Eval, a non-finite loss or the end came: assess at the next redraw
        self._at = 0.0  # time.monotonic() of the last assessment
        self._reported: set[str] = set()  # finding kinds already returned as new

    def start(self, run: RunStarted, *, same_run: bool) -> None:
        """A RunStarted: a resume of the same run keeps the histories, another run starts afresh."""
        if not same_run:
            self.steps.clear()
            self.evals.clear()
            self._reported.clear()
            self.findings = None
        self.run = run
        self.urgent = True

    def note(self, event: Event) -> None:
        match event:
            case Step():
                self.steps.append(event)
                self.stale = True
                self.urgent |= not math.isfinite(event.loss)
            case Eval():
                self.evals.append(event)
                self.urgent = True
            case Finished() | Failed():
                self.urgent = True

    def assess_if_due(self, force: bool = False) -> list[Finding]:
        """Assess when due (or `force`d and anything changed); the findings of a kind not seen before."""
        due = self.urgent or (self.stale and time.monotonic() - self._at >= HEALTH_SECONDS)
        if not (due or (force and (self.stale or self.findings is None))):
            return []
        self.urgent = self.stale = False
        self._at = time.monotonic()
        if not self.steps and not self.evals:
            self.findings = None  # nothing to judge yet
            return []
        head = [self.run] if self.run is not None else []
        self.findings = assess([*head, *self.steps, *self.evals])
        new = [f for f in self.findings if f.kind not in self._reported]
        self._reported.update(f.kind for f in new)
        return new
