"""Measured run figures: MFU against the card's own peak, the ETA, memory in use, and the Step event.

The loop only feeds these (step times, eval and checkpoint costs); they own the smoothing and the
formulas, so the headless printer, the app and the benchmark show the same numbers. StepMetrics is the
component the Trainer holds: it counts the steps of a log window and builds the Step event from them.
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass

from trainer.observe import events as ev


def mfu(tokens_per_sec: float, flops_per_token: float, peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s over the peak (0.41 = 41%); None when the peak is unknown."""
    if not peak_flops or peak_flops <= 0:
        return None
    return tokens_per_sec * flops_per_token / peak_flops


def hellaswag_scorings(interval: int, max_iters: int, remaining_iters: int | None = None) -> int:
    """HellaSwag scorings at the boundaries max_iters - remaining_iters .. max_iters (all of the run when None):
    each multiple of `interval` among them, plus the one at max_iters when it is none (as
    trainer.train.hellaswag.HellaSwagAtBoundary.due); 0 when interval <= 0 (only when asked)."""
    if interval <= 0:
        return 0
    after = max_iters - (max_iters if remaining_iters is None else remaining_iters)  # the first boundary ahead
    multiples = max_iters // interval - (after - 1) // interval if after >= 1 else max_iters // interval
    return multiples + (1 if max_iters % interval else 0)


class EtaEstimator:
    """ETA = remaining iterations x smoothed step time + mean eval cost x evals to come + mean checkpoint
    cost x checkpoints to come + mean HellaSwag scoring cost x scorings to come.

    The first `warmup_steps` step times of a run (or of a resume, or after a compile fallback) are left
    out: they hold compilation and allocator warm-up and would inflate the estimate for the whole run.
    """

    def __init__(self, warmup_steps: int = 2, smoothing: float = 0.1) -> None:
        self.smoothing = smoothing  # EMA weight of the newest step
        self._skip = warmup_steps
        self.step_seconds: float | None = None
        self._evals: list[float] = []
        self._ckpt_total = 0.0
        self._ckpt_count = 0
        self._hellaswag: list[float] = []  # seconds of each HellaSwag scoring at a boundary
        self._hellaswag_interval = 0
        self._max_iters = 0

    def plan_hellaswag(self, interval: int, max_iters: int) -> None:
        """HellaSwag is scored every `interval` iterations and at max_iters (0 = never, only when asked)."""
        self._hellaswag_interval, self._max_iters = interval, max_iters

    def add_hellaswag(self, seconds: float) -> None:
        self._hellaswag.append(seconds)

    def hellaswag_to_come(self, remaining_iters: int) -> int:
        """Scorings ahead when `remaining_iters` steps are left (hellaswag_scorings)."""
        return hellaswag_scorings(self._hellaswag_interval, self._max_iters, remaining_iters)

    def skip_next(self, n: int = 2) -> None:
        """Leave the next n step times out (after a recompile or a batch-size change)."""
        self._skip = max(self._skip, n)

    def add_step(self, seconds: float) -> None:
        self.add_window(seconds, 1)

    def add_window(self, seconds: float, steps: int) -> None:
        """`steps` steps that took `seconds` together, measured at a log point (where the device synced:
        the single steps in between are only launch times on a GPU). The EMA moves as far as `steps`
        single-step updates of the window's mean would move it. A window holding warm-up steps is left out."""
        if steps <= 0:
            return
        if self._skip > 0:
            self._skip = max(self._skip - steps, 0)
            return
        mean = seconds / steps
        if self.step_seconds is None:
            self.step_seconds = mean
        else:
            self.step_seconds += (1 - (1 - self.smoothing) ** steps) * (mean - self.step_seconds)

    def add_eval(self, seconds: float) -> None:
        self._evals.append(seconds)

    def add_checkpoint(self, seconds: float) -> None:
        self._ckpt_total += seconds
        self._ckpt_count += 1

    @property
    def eval_seconds(self) -> float | None:
        """Mean eval time; the first is left out once there are others (it holds the eval-mode compile)."""
        if not self._evals:
            return None
        counted = self._evals[1:] or self._evals
        return sum(counted) / len(counted)

    @property
    def checkpoint_seconds(self) -> float | None:
        return self._ckpt_total / self._ckpt_count if self._ckpt_count else None

    def eta(self, remaining_iters: int, evals_left: int, checkpoints_left: int) -> float | None:
        """Seconds left, or None until a step time has been measured past the warm-up."""
        if self.step_seconds is None:
            return None
        seconds = remaining_iters * self.step_seconds
        # An eval or checkpoint not yet measured (a resume) counts as nothing until it is: never a guess.
        seconds += (self.eval_seconds or 0.0) * evals_left
        seconds += (self.checkpoint_seconds or 0.0) * checkpoints_left
        if self._hellaswag:  # measured: the mean scoring time for each one still to come
            seconds += sum(self._hellaswag) / len(self._hellaswag) * self.hellaswag_to_come(remaining_iters)
        return seconds


def evals_to_come(next_iter: int, max_iters: int, eval_interval: int) -> int:
    """Evaluations still ahead when the next step to run is `next_iter`: one at each multiple of
    eval_interval in [next_iter, max_iters), plus the final one at max_iters."""
    if next_iter >= max_iters:
        return 1
    first = -(-next_iter // eval_interval) * eval_interval  # ceil to a multiple
    periodic = 0 if first >= max_iters else (max_iters - 1 - first) // eval_interval + 1
    return periodic + 1


@dataclass(frozen=True, slots=True)
class MemoryStats:
    allocated_bytes: int | None
    reserved_bytes: int | None
    """CUDA allocator's reserved bytes; on CPU the process's resident set size."""
    peak_bytes: int | None
    total_bytes: int | None


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_rss_bytes() -> int | None:
    """Resident memory of this process now (Linux /proc/self/statm), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def process_peak_rss_bytes() -> int | None:
    """The process's peak resident memory (ru_maxrss is KiB on Linux)."""
    try:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (OSError, ValueError):
        return None


def memory_stats(device: str, total_bytes: int | None = None) -> MemoryStats:
    """Memory in use on `device`: CUDA allocator statistics, or the process's RSS on CPU. On CUDA these
    are host-side counters (no device sync)."""
    if device.startswith("cuda"):
        import torch

        return MemoryStats(
            allocated_bytes=torch.cuda.memory_allocated(device),
            reserved_bytes=torch.cuda.memory_reserved(device),
            peak_bytes=torch.cuda.max_memory_reserved(device),
            total_bytes=total_bytes if total_bytes is not None
            else torch.cuda.get_device_properties(device).total_memory,
        )
    return MemoryStats(None, process_rss_bytes(), process_peak_rss_bytes(), total_bytes)


class StepMetrics:
    """The Step event's figures: a log window's step time, tokens/s, MFU, tokens seen, epoch and ETA.

    Fed one `add_step(seconds)` per optimizer step; `step_event` closes the window (log_interval steps, or
    fewer at the end) and returns the event. Constructed with what the run's config and plan derived once.
    """

    def __init__(self, *, tokens_per_iter: int, flops_per_token: float, peak_flops: float | None,
                 dataset_tokens: int, max_iters: int, eval_interval: int, always_save_checkpoint: bool,
                 device: str = "cpu", memory_bytes: int | None = None, world_size: int = 1,
                 eta: EtaEstimator | None = None, started: float | None = None) -> None:
        self.tokens_per_iter = tokens_per_iter
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self.dataset_tokens = dataset_tokens
        self.max_iters = max_iters
        self.eval_interval = eval_interval
        self.always_save_checkpoint = always_save_checkpoint
        self.device = device
        self.memory_bytes = memory_bytes
        self.world_size = world_size  # processes training together: MFU is per card
        self.started = time.perf_counter() if started is None else started
        self.eta = eta or EtaEstimator()  # the Trainer's, which evals and checkpoints feed too
        self.window_seconds = 0.0
        self.window_steps = 0

    def add_step(self, seconds: float) -> None:
        self.window_seconds += seconds
        self.window_steps += 1

    def step_event(self, it: int, *, loss: float, grad_norm: float, lr: float, skipped_steps: int = 0,
                   log_point: bool = True) -> ev.Step:
        """The Step event for iteration `it`, the last of the window; the window starts afresh. A live point
        (`log_point` False, trainer.train.live_figures) on a GPU closes the window a step or so after `it`."""
        seconds, steps = self.window_seconds, self.window_steps
        self.window_seconds, self.window_steps = 0.0, 0
        self.eta.add_window(seconds, steps)
        step_seconds = seconds / max(steps, 1)
        tokens_per_sec = self.tokens_per_iter / step_seconds if step_seconds > 0 else 0.0
        mem = memory_stats(self.device, self.memory_bytes)
        tokens_seen = (it + 1) * self.tokens_per_iter
        return ev.Step(
            iter=it, loss=loss, lr=lr, step_seconds=step_seconds, tokens_per_sec=tokens_per_sec,
            mfu=mfu(tokens_per_sec / self.world_size, self.flops_per_token, self.peak_flops),
            mem_allocated_bytes=mem.allocated_bytes, mem_reserved_bytes=mem.reserved_bytes,
            mem_peak_bytes=mem.peak_bytes, mem_total_bytes=mem.total_bytes, tokens_seen=tokens_seen,
            epoch=tokens_seen / max(self.dataset_tokens, 1), elapsed_seconds=time.perf_counter() - self.started,
            eta_seconds=self.eta_after(it), grad_norm=grad_norm if math.isfinite(grad_norm) else None,
            skipped_steps=skipped_steps, log_point=log_point)

    def progress_event(self, it: int) -> ev.Progress:
        """How far the run got after iteration `it`: elapsed time and the ETA as a Step would say them now."""
        tokens_seen = (it + 1) * self.tokens_per_iter
        return ev.Progress(iter=it, elapsed_seconds=time.perf_counter() - self.started, eta_seconds=self.eta_after(it),
                           tokens_seen=tokens_seen, epoch=tokens_seen / max(self.dataset_tokens, 1))

    def eta_after(self, it: int) -> float | None:
        """Seconds left once iteration `it` is done (EtaEstimator.eta), evals and checkpoints to come counted."""
        evals_left = evals_to_come(it + 1, self.max_iters, self.eval_interval)
        return self.eta.eta(self.max_iters - it - 1, evals_left, evals_left if self.always_save_checkpoint else 1)
