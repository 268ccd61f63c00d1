"""The learning-rate schedule: linear warm-up, then cosine decay to min_lr, then min_lr (nanoGPT's get_lr).

One difference from nanoGPT: the warm-up is (it + 1) / (warmup_iters + 1) of the peak, so step 0 never
runs at a zero rate (a wasted step) and the peak is reached at it == warmup_iters. Every setting is
well-defined: a warm-up as long as the run only rises; lr_decay_iters at or before warmup_iters has no
cosine (the rate drops from the warm-up to min_lr). Such settings run, with a warning (`schedule_warnings`).

On --resume the schedule is what the checkpoint ran with, plus what the user sets; a change is reported
with the rate at the resume iteration before and after (`describe_schedule_change`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from trainer.config import RunConfig


@dataclass(frozen=True, slots=True)
class Schedule:
    """The settings lr_at reads (a RunConfig has the same names, so either can be passed)."""

    learning_rate: float
    min_lr: float
    warmup_iters: int
    lr_decay_iters: int
    decay_lr: bool = True

    @classmethod
    def of(cls, source: RunConfig | Mapping[str, Any]) -> "Schedule | None":
        """From a RunConfig, or a checkpoint's "config" dict (None when it lacks a key: not comparable)."""
        values = source.to_dict() if isinstance(source, RunConfig) else source
        try:
            return cls(**{f.name: values[f.name] for f in fields(cls)})
        except (KeyError, TypeError):
            return None


def lr_at(it: int, config: RunConfig | Schedule) -> float:
    """Learning rate for optimizer step `it` (0-based)."""
    peak = config.learning_rate
    if not config.decay_lr:
        return peak
    if it < config.warmup_iters:
        return peak * (it + 1) / (config.warmup_iters + 1)
    if it >= config.lr_decay_iters:  # also every step past a warm-up that ends at or after lr_decay_iters
        return config.min_lr
    # Here warmup_iters <= it < lr_decay_iters, so the span below is at least 1 (no division by zero).
    # Cosine from the peak at warmup_iters down to min_lr at lr_decay_iters; ratio in [0, 1).
    ratio = (it - config.warmup_iters) / (config.lr_decay_iters - config.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return config.min_lr + coeff * (peak - config.min_lr)


def schedule_warnings(config: RunConfig) -> list[str]:
    """Settings that run but are likely not what was meant, one line each (nanoGPT runs them silently)."""
    if not config.decay_lr:
        return []
    if config.warmup_iters >= config.max_iters:
        last = lr_at(config.max_iters - 1, config)
        return [f"warmup_iters = {config.warmup_iters} is as long as the run (max_iters {config.max_iters}): "
                f"the learning rate only rises, to {last:.2e} at the last step, and never decays; "
                f"--set warmup_iters={max(config.max_iters // 10, 0)} for a warm-up of a tenth of the run"]
    if config.lr_decay_iters <= config.warmup_iters:
        return [f"lr_decay_iters = {config.lr_decay_iters} is not after warmup_iters = {config.warmup_iters}: "
                f"no cosine decay, the rate drops from {config.learning_rate:.2e} to min_lr {config.min_lr:.2e} "
                f"at iter {config.warmup_iters}"]
    return []


def describe_schedule_change(before: RunConfig | Mapping[str, Any] | None, after: RunConfig,
                             it: int, max_iters_before: int | None = None) -> str | None:
    """One line when a resume at step `it` changes the schedule: what changed and the rate at `it` before
    and after. When only max_iters grew past lr_decay_iters, says the schedule is kept and how to stretch it.
    None when nothing to say (or `before` is a checkpoint without the schedule's keys)."""
    old = Schedule.of(before) if before is not None else None
    new = Schedule.of(after)
    if old is None or new is None:
        return None
    if old != new:
        changes = ", ".join(f"{f.name} {getattr(old, f.name)!r} -> {getattr(new, f.name)!r}"
                            for f in fields(Schedule) if getattr(old, f.name) != getattr(new, f.name))
        return (f"the learning-rate schedule changed on resume ({changes}): the rate at iter {it:,} goes "
                f"from {lr_at(it, old):.2e} to {lr_at(it, new):.2e}")
    grew = max_iters_before is not None and after.max_iters > max_iters_before
    if grew and new.decay_lr and after.max_iters > new.lr_decay_iters:
        stretched = Schedule(new.learning_rate, new.min_lr, new.warmup_iters, after.max_iters, True)
        return (f"max_iters {max_iters_before:,} -> {after.max_iters:,}; the schedule is kept: lr_decay_iters "
                f"{new.lr_decay_iters:,}, from there the rate stays at min_lr {new.min_lr:.2e}; "
                f"--set lr_decay_iters={after.max_iters} would decay over the new length instead (the rate at "
                f"iter {it:,} would go from {lr_at(it, new):.2e} to {lr_at(it, stretched):.2e})")
    return None
