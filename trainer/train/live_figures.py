"""Figures between log points, without a host sync inside a step: Progress every second, a live loss point
every few seconds.

log_interval spaces the Step events the headless printer prints, and at a log point the host reads the loss
(one sync). On a card where a step takes seconds (an RTX 4070 at 2.5-4.5 s) and log_interval is 50, that left
every view standing still for minutes. Between log points this component gives, from the trainer thread:

  * a Progress event (the last iteration done, elapsed time, ETA) after a step when PROGRESS_SECONDS have
    passed since the last one: the views' iteration and clocks move at least that often, or once a step;
  * a live Step (`log_point` False) when POINT_SECONDS have passed since the last point was started: its loss,
    gradient norm and skipped-step count are copied off the device into pinned host memory without blocking,
    with a CUDA event recorded behind the copy; the Step goes out after a later step whose event has
    completed (`Event.query()` asks, never waits). On the CPU the figures are there already: read at once.
    So a point arrives at least every 2 x POINT_SECONDS (10 s) when steps are shorter, and after every step
    when they are longer.

events.jsonl stays bounded by time, whatever the step rate: at most one Progress a second (about 160 bytes)
and one live Step every POINT_SECONDS (about 600 bytes with vitals), about 1 MB an hour of training on top of
the log points.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from trainer.observe import events as ev
from trainer.observe.metrics import StepMetrics

PROGRESS_SECONDS = 1.0
"""A Progress event at most this often (and at most once a step)."""

POINT_SECONDS = 5.0
"""A live point is started when this long has passed since the last one started (or since a log point)."""


@dataclass(frozen=True)
class _Pending:
    iter: int
    values: torch.Tensor  # (3,) float32 in pinned host memory: loss, gradient norm, skipped steps
    done: torch.cuda.Event  # recorded behind the copy: query() True once the values are there


class LiveFigures:
    """Built with the run's StepMetrics (the Step's figures and the ETA) and the device the loss lives on.

    `after_step` is called after every step that is not a log point, `logged` at each log point; both return at
    once and neither waits for the device.
    """

    def __init__(self, metrics: StepMetrics, device: str, lr_at: Callable[[int], float], *, first_iter: int = 0,
                 point_seconds: float | None = None, progress_seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`lr_at(it)`: the learning rate of iteration `it`; `first_iter`: the run's first (a resume's start).
        The intervals default to POINT_SECONDS and PROGRESS_SECONDS as they are when the run starts."""
        self.metrics = metrics
        self.lr_at = lr_at
        self._unlogged_from = first_iter  # the first iteration no log point has told yet
        self.on_cuda = str(device).startswith("cuda")
        self.point_seconds = POINT_SECONDS if point_seconds is None else point_seconds
        self.progress_seconds = PROGRESS_SECONDS if progress_seconds is None else progress_seconds
        self._clock = clock
        self._last_point = self._last_progress = clock()
        self._pending: _Pending | None = None
        self._host: torch.Tensor | None = None  # the pinned buffer the figures are copied into (CUDA)

    def logged(self, it: int) -> int:
        """Iteration `it` is a log point: its Step is the freshest point (a read in flight is dropped). Returns the
        first iteration of the log window it closes (the bad-step warning names the window)."""
        self._pending = None
        self._last_point = self._last_progress = self._clock()
        first, self._unlogged_from = self._unlogged_from, it + 1
        return first

    def after_step(self, it: int, loss: torch.Tensor, norm: torch.Tensor, skipped: torch.Tensor) -> list[ev.Event]:
        """The events due after step `it` (0-dim device tensors of its loss, norm and skipped count): a live
        Step whose figures have reached the host, then a Progress when one is due; often none."""
        out: list[ev.Event] = []
        now = self._clock()
        if self._pending is not None and self._pending.done.query():  # completed: reading it waits for nothing
            pending, self._pending = self._pending, None
            out.append(self._point(pending.iter, pending.values.tolist()))
        if self._pending is None and now - self._last_point >= self.point_seconds:
            self._last_point = now
            figures = torch.stack([loss.detach().float(), norm.detach().float(), skipped.detach().float()])
            if self.on_cuda:
                self._pending = _Pending(it, *self._copy_off_device(figures))
            else:
                out.append(self._point(it, figures.tolist()))  # computed already: no wait on a CPU
        if out and out[-1].iter == it:  # a point of this very step says all a Progress would
            self._last_progress = now
        elif now - self._last_progress >= self.progress_seconds:
            self._last_progress = now
            out.append(self.metrics.progress_event(it))
        return out

    def _copy_off_device(self, figures: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event]:
        """Start copying `figures` into pinned host memory behind the step's kernels; the event completes when
        the copy has (the host does not wait: the copy is queued on the current stream). One buffer, made at the
        first point (cudaHostAlloc may synchronize: once, between steps), serves every point: a new copy starts
        only after the last one was read."""
        if self._host is None:
            self._host = torch.empty(figures.shape, dtype=torch.float32, pin_memory=True)
        host = self._host
        host.copy_(figures, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

    def _point(self, it: int, values: list[float]) -> ev.Step:
        loss, norm, skipped = values
        return self.metrics.step_event(it, loss=loss, grad_norm=norm, lr=self.lr_at(it), skipped_steps=int(skipped),
                                       log_point=False)
