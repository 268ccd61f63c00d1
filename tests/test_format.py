"""The console's formatting helpers: units, "unknown" for missing values, "≈" on estimates."""

from __future__ import annotations

import math
from datetime import timezone

import pytest

from fwtui import format as fmt


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (45.4, "45s"), (125, "2m05s"), (3 * 3600 + 13 * 60 + 5, "3h13m"), (12 * 3600 + 27 * 60, "12h27m"),
    (2 * 86400 + 4 * 3600 + 59, "2d04h"), (-3, "0s"),
])
def test_duration_uses_the_two_largest_units(seconds, text):
    assert fmt.duration(seconds) == text


@pytest.mark.parametrize("helper", [fmt.duration, fmt.seconds, fmt.gigabytes, fmt.gb_number, fmt.count, fmt.compact,
                                    fmt.percent, fmt.tflops, fmt.loss, fmt.clock])
def test_missing_values_say_unknown(helper):
    assert helper(None) == "unknown"
    assert helper(math.nan) == "unknown"


def test_approx_marks_estimates_but_not_unknowns():
    assert fmt.approx("12h27m") == "≈ 12h27m"
    assert fmt.approx(fmt.duration(None)) == "unknown"


def test_seconds_keeps_precision_for_short_waits():
    assert fmt.seconds(0.314) == "0.31 s"
    assert fmt.seconds(9.34) == "9.34 s"
    assert fmt.seconds(20) == "20 s"
    assert fmt.seconds(3700) == "1h01m"


def test_bytes_are_decimal_gigabytes_and_small_ones_megabytes():
    assert fmt.gigabytes(9_800_000_000) == "9.8 GB"
    assert fmt.gigabytes(12_000_000_000) == "12.0 GB"
    assert fmt.gigabytes(52_000_000) == "52 MB"
    assert fmt.gb_number(10_150_000_000) == "10.2"


def test_counts_exact_and_compact():
    assert fmt.count(1240) == "1,240"
    assert fmt.count(6000.0) == "6,000"
    assert fmt.compact(56_100) == "56.1k"
    assert fmt.compact(123_587_328) == "124M"
    assert fmt.compact(1_200_000_000) == "1.20B"
    assert fmt.compact(512) == "512"
    assert fmt.compact(0.5) == "0.5"


def test_percent_tflops_loss_rate():
    assert fmt.percent(0.412) == "41.2%"
    assert fmt.percent(0.4, 0) == "40%"
    assert fmt.tflops(58.3e12) == "58.3 TFLOP/s"
    assert fmt.loss(4.3149) == "4.31"
    assert fmt.loss(1234.5) == "1234"  # a diverged run: no spurious decimals
    assert fmt.rate(56_100.0, "tok") == "56.1k tok/s"
    assert fmt.rate(None, "tok") == "unknown"


def test_clock_shows_the_weekday_only_for_another_day():
    t = 1_700_000_000.0  # Tue 2023-11-14 22:13:20 UTC
    assert fmt.clock(t, now=t - 3600, tz=timezone.utc) == "22:13"
    assert fmt.clock(t + 6 * 3600, now=t, tz=timezone.utc) == "Wed 04:13"
    assert fmt.clock(t, tz=timezone.utc) == "Tue 22:13"


def test_bar_reads_without_colour_and_clamps():
    assert fmt.bar(0.5, 10) == "█████░░░░░"
    assert fmt.bar(1.7, 4) == "████"
    assert fmt.bar(-1, 4) == "░░░░"
    assert fmt.bar(None, 3) == "░░░"
