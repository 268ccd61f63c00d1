"""The learning-rate schedule: linear warm-up, then cosine decay to min_lr, then min_lr (nanoGPT's get_lr).

One difference from nanoGPT: the warm-up is (it + 1) / (warmup_iters + 1) of the peak, so step 0 never
runs at a zero rate (a wasted step) and the peak is reached at it == warmup_iters.
"""

from __future__ import annotations

import math

from trainer.config import RunConfig


def lr_at(it: int, config: RunConfig) -> float:
    """Learning rate for optimizer step `it` (0-based)."""
    peak = config.learning_rate
    if not config.decay_lr:
        return peak
    if it < config.warmup_iters:
        return peak * (it + 1) / (config.warmup_iters + 1)
    if it >= config.lr_decay_iters:
        return config.min_lr
    # Cosine from the peak at warmup_iters down to min_lr at lr_decay_iters; ratio in [0, 1).
    ratio = (it - config.warmup_iters) / (config.lr_decay_iters - config.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return config.min_lr + coeff * (peak - config.min_lr)
