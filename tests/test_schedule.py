"""The learning-rate schedule: warm-up never at zero, the peak at warmup_iters, cosine down to min_lr."""

from __future__ import annotations

import math

from trainer.config import RunConfig
from trainer.schedule import lr_at


def config(**kw) -> RunConfig:
    base = dict(learning_rate=1e-3, min_lr=1e-4, warmup_iters=10, lr_decay_iters=100, max_iters=120)
    base.update(kw)
    return RunConfig(**base).validate()


def test_step_zero_is_never_zero():
    cfg = config()
    assert lr_at(0, cfg) == cfg.learning_rate / 11
    assert lr_at(0, cfg) > 0


def test_warmup_is_linear_and_reaches_the_peak():
    cfg = config()
    rates = [lr_at(i, cfg) for i in range(11)]
    assert all(b > a for a, b in zip(rates, rates[1:]))
    assert math.isclose(rates[5] - rates[4], rates[9] - rates[8])
    assert lr_at(10, cfg) == cfg.learning_rate


def test_cosine_decays_monotonically_to_min_lr_then_stays():
    cfg = config()
    rates = [lr_at(i, cfg) for i in range(10, 101)]
    assert all(b <= a for a, b in zip(rates, rates[1:]))
    midpoint = lr_at(55, cfg)  # half way through the cosine: the mean of peak and floor
    assert math.isclose(midpoint, (cfg.learning_rate + cfg.min_lr) / 2)
    assert lr_at(100, cfg) == cfg.min_lr
    assert lr_at(119, cfg) == cfg.min_lr
    assert min(rates) >= cfg.min_lr


def test_decay_off_means_constant():
    cfg = config(decay_lr=False)
    assert {lr_at(i, cfg) for i in (0, 5, 50, 119)} == {cfg.learning_rate}


def test_no_warmup_starts_at_the_peak():
    cfg = config(warmup_iters=0)
    assert lr_at(0, cfg) == cfg.learning_rate
