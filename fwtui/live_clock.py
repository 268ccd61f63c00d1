"""Where a run stands now, for the dashboard's header and time panel: the freshest of its last Step and Progress,
moved on by the wall clock between events.

A step on an RTX 4070 takes seconds, so even a Progress after every step leaves seconds between events. While the
run is training (not paused, not over), the elapsed time counts up and the ETA down by the wall time since the
event that gave them (each event carries the wall-clock `time` it was made at), so both move every second. They
stop moving HOLD_SECONDS (or 4 steps, if longer) after the last event: a run that went quiet (a long evaluation,
a killed process) does not appear to train on, and a replayed old log shows exactly what it says.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer.observe.events import Progress, Step

HOLD_SECONDS = 60.0
"""The clocks move on for at most this long past the last event (or 4 step times, if longer)."""


@dataclass(frozen=True)
class RunClock:
    """The run's iteration, elapsed time and ETA as of wall-clock time `at` (seconds since the epoch)."""

    iter: int
    elapsed_seconds: float
    eta_seconds: float | None
    at: float
    tokens_seen: int
    epoch: float


def run_clock(step: Step | None, progress: Progress | None, *, now: float, moving: bool) -> RunClock | None:
    """The freshest of `step` and `progress` (the later iteration; the later event on a tie), moved on to `now`
    when `moving` (the run is training: not paused, not over); None before either. The ETA never goes below 0."""
    sources = [e for e in (step, progress) if e is not None]
    if not sources:
        return None
    latest = max(sources, key=lambda e: (e.iter, e.time))
    hold = max(HOLD_SECONDS, 4 * step.step_seconds) if step is not None else HOLD_SECONDS
    ahead = min(max(now - latest.time, 0.0), hold) if moving else 0.0
    eta = None if latest.eta_seconds is None else max(latest.eta_seconds - ahead, 0.0)
    return RunClock(iter=latest.iter, elapsed_seconds=latest.elapsed_seconds + ahead, eta_seconds=eta,
                    at=latest.time + ahead, tokens_seen=latest.tokens_seen, epoch=latest.epoch)
