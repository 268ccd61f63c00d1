"""The learning-rate schedule: warm-up never at zero, the peak at warmup_iters, cosine down to min_lr, min_lr
past lr_decay_iters; every setting defined; the warnings and the resume's before/after line."""

from __future__ import annotations

import math

from trainer.config import RunConfig
from trainer.train.schedule import describe_schedule_change, lr_at, schedule_warnings


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


# --- every setting is defined (nanoGPT's get_lr is the reference), and what runs is a warning, not an error ---

def test_past_lr_decay_iters_the_rate_stays_at_min_lr():
    cfg = config(lr_decay_iters=60, max_iters=12000)
    assert {lr_at(i, cfg) for i in (60, 61, 6000, 11999)} == {cfg.min_lr}


def test_a_warmup_as_long_as_the_run_only_rises_and_is_a_warning():
    # cpu-tiny with --set max_iters=20: warmup_iters 20, lr_decay_iters follows max_iters to 20.
    cfg = config(warmup_iters=20, lr_decay_iters=20, max_iters=20)  # validate() used to refuse this
    rates = [lr_at(i, cfg) for i in range(20)]
    assert all(b > a for a, b in zip(rates, rates[1:])) and rates[-1] == cfg.learning_rate * 20 / 21
    (warning,) = schedule_warnings(cfg)
    assert "warmup_iters = 20 is as long as the run (max_iters 20)" in warning and "9.52e-04" in warning


def test_decay_ending_at_or_before_the_warmup_drops_to_min_lr_without_dividing_by_zero():
    for decay in (10, 4, 0):  # == warmup_iters (nanoGPT would divide 0 by 0 at it == 10), before it, none
        cfg = config(warmup_iters=10, lr_decay_iters=decay, max_iters=30)
        assert [lr_at(i, cfg) for i in (9, 10, 11, 29)] == [cfg.learning_rate * 10 / 11] + [cfg.min_lr] * 3
        (warning,) = schedule_warnings(cfg)
        assert f"lr_decay_iters = {decay} is not after warmup_iters = 10" in warning
    nothing = config(warmup_iters=0, lr_decay_iters=0, max_iters=5)
    assert {lr_at(i, nothing) for i in range(5)} == {nothing.min_lr}


def test_an_ordinary_schedule_has_no_warning():
    assert schedule_warnings(config()) == [] and schedule_warnings(config(decay_lr=False, warmup_iters=500)) == []


def test_a_schedule_change_names_the_rate_at_the_resume_iteration_before_and_after():
    before = config(lr_decay_iters=60, max_iters=60)
    after = before.replace(lr_decay_iters=120, max_iters=120)
    message = describe_schedule_change(before.to_dict(), after, 60, max_iters_before=60)
    assert message == ("the learning-rate schedule changed on resume (lr_decay_iters 60 -> 120): the rate at "
                       f"iter 60 goes from {lr_at(60, before):.2e} to {lr_at(60, after):.2e}")
    assert lr_at(60, before) == 1e-4 and lr_at(60, after) > 5e-4  # the jump it warns of


def test_a_longer_run_keeping_its_schedule_says_how_to_stretch_it():
    before = config(lr_decay_iters=60, max_iters=60)
    message = describe_schedule_change(before, before.replace(max_iters=120), 60, max_iters_before=60)
    assert message.startswith("max_iters 60 -> 120; the schedule is kept: lr_decay_iters 60, from there the rate "
                              "stays at min_lr 1.00e-04; --set lr_decay_iters=120 would decay")
    assert describe_schedule_change(before, before, 30, max_iters_before=60) is None
    assert describe_schedule_change({"learning_rate": 1e-3}, before, 30) is None  # not comparable: no line
