"""The chart keys' arithmetic (fwtui.chart_math) against values worked out here by hand."""

from __future__ import annotations

import math
import zlib

import pytest

from fwtui.chart_math import (PALETTE, SMOOTHING_FACTORS, X_AXES, AxisMap, Ema, axis_scale, colour_index,
                              ema_series, interpolate, log_tick_label, log_ticks, log_y, next_in, run_colours)


def test_ema_is_debiased():
    # beta 0.9: biased 0.1*4 = 0.4 -> /(1-0.9) = 4; then 0.9*0.4 + 0.1*2 = 0.56 -> /(1-0.81) = 2.947...
    assert ema_series([4.0, 2.0], 0.9) == pytest.approx([4.0, 0.56 / 0.19])


def test_ema_of_a_constant_is_the_constant_from_the_first_value():
    assert ema_series([3.0] * 5, 0.99) == pytest.approx([3.0] * 5)


def test_ema_matches_the_recurrence_for_every_factor():
    values = [10.0, 8.0, 7.5, 6.0, 6.2, 5.1]
    for beta in SMOOTHING_FACTORS:
        if not beta:
            continue
        biased, expected = 0.0, []
        for t, y in enumerate(values, start=1):
            biased = beta * biased + (1 - beta) * y
            expected.append(biased / (1 - beta ** t))
        assert ema_series(values, beta) == pytest.approx(expected)


def test_ema_skips_non_finite_losses_and_waits_for_a_finite_one():
    assert ema_series([math.nan, 4.0, math.inf, 2.0], 0.5) == pytest.approx([None, 4.0, 4.0, (0.5 * 2 + 1) / 0.75])
    assert Ema(0.9).value is None
    with pytest.raises(ValueError):
        Ema(1.0)


def test_keys_cycle_through_their_options():
    assert next_in(X_AXES, "iter") == "tokens" and next_in(X_AXES, "time") == "flops"
    assert next_in(X_AXES, "flops") == "iter"
    assert next_in(SMOOTHING_FACTORS, 0.99) == 0.0 and next_in(SMOOTHING_FACTORS, 0.0) == 0.6


def test_axis_map_interpolates_evals_between_steps():
    axis = AxisMap()
    for it in (0, 10, 20):
        axis.add(it, it * 1000, it * 2.5)  # 1,000 tokens and 2.5 s per iteration
    assert axis.convert([0, 5, 15, 20], "tokens") == pytest.approx([0, 5000, 15000, 20000])
    assert axis.convert([5, 25], "time") == pytest.approx([12.5, 62.5])  # past the end: the last segment's line
    assert axis.convert([5], "iter") == [5]


def test_axis_map_sorts_a_replay_out_of_order_and_ignores_repeats():
    axis = AxisMap()
    for it in (20, 0, 10, 10):
        axis.add(it, it * 3, it)
    assert axis.convert([15], "tokens") == pytest.approx([45])
    assert interpolate([4.0], [8.0], 2.0) == 4.0  # one point: proportional


def test_axis_scale_picks_readable_units():
    assert axis_scale("tokens", 3e9) == (1e9, "tokens (B)")
    assert axis_scale("tokens", 5e6) == (1e6, "tokens (M)")
    assert axis_scale("time", 3 * 3600) == (3600.0, "wall time (h)")
    assert axis_scale("time", 300) == (60.0, "wall time (min)")
    assert axis_scale("time", 30) == (1.0, "wall time (s)")
    assert axis_scale("iter", 1e9) == (1.0, "iter")


def test_log_y_drops_values_without_a_logarithm():
    xs, ys = log_y([1, 2, 3, 4], [100.0, 0.0, -1.0, math.nan])
    assert xs == [1] and ys == pytest.approx([2.0])
    assert log_tick_label(math.log10(4)) == "4"


def test_log_ticks_fall_on_round_losses():
    ticks = log_ticks(math.log10(3.2), math.log10(11))
    labels = [log_tick_label(t) for t in ticks]
    assert labels[0] == "4" and labels[-1] == "10" and len(ticks) <= 5
    assert all(float(label) in (4, 5, 6, 8, 10) for label in labels)


def test_a_runs_colour_comes_from_its_name():
    assert colour_index("baseline") == zlib.crc32(b"baseline") % len(PALETTE)
    assert run_colours(["baseline"]) == [colour_index("baseline")]


def test_runs_landing_on_one_colour_take_the_next_free_one():
    names = [f"run{k}" for k in range(40)]
    a, b = next((x, y) for x in names for y in names if x != y and colour_index(x) == colour_index(y))
    first, second = run_colours([a, b])
    assert first == colour_index(a) and second == (colour_index(a) + 1) % len(PALETTE)
    assert len(set(run_colours(names[: len(PALETTE)]))) == len(PALETTE)
