"""Seed groups and Welch's t-test (trainer.runs.significance) and their table (fwtui.seed_summary): the test
statistic, degrees of freedom, interval and p against a worked example computed by the textbook formulas."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats

from fwtui.seed_summary import summary_lines, summary_markdown
from trainer.runs.significance import NO_TEST, RunFigures, group_by_seed, spread, welch

A = [3.281, 3.274, 3.290, 3.285]  # val losses of four seeds of the baseline
B = [3.262, 3.270, 3.255]  # three seeds of the change


def test_welch_matches_the_worked_example():
    ma, mb = sum(A) / len(A), sum(B) / len(B)
    va = sum((x - ma) ** 2 for x in A) / (len(A) - 1)
    vb = sum((x - mb) ** 2 for x in B) / (len(B) - 1)
    se = math.sqrt(va / len(A) + vb / len(B))
    t = (mb - ma) / se
    df = se ** 4 / ((va / len(A)) ** 2 / (len(A) - 1) + (vb / len(B)) ** 2 / (len(B) - 1))  # Welch–Satterthwaite
    p = 2 * stats.t.sf(abs(t), df)  # two-sided, from Student's t distribution
    half = stats.t.ppf(0.975, df) * se
    d = welch(A, B)
    assert d.diff == pytest.approx(mb - ma, abs=1e-12)
    assert d.t == pytest.approx(t, rel=1e-9) and d.df == pytest.approx(df, rel=1e-9)
    assert d.p == pytest.approx(p, rel=1e-9)
    assert (d.low, d.high) == (pytest.approx(mb - ma - half, rel=1e-9), pytest.approx(mb - ma + half, rel=1e-9))
    # by hand: means 3.2825 and 3.26233, variances 45.667e-6 and 56.333e-6, se 0.0054949: t = -3.670
    assert (round(t, 4), round(df, 4), round(p, 4)) == (-3.67, 4.1488, 0.0201)
    assert not d.significant  # 0.0201 is not below 0.01


def test_one_run_a_side_gives_no_number_and_no_spread_is_said():
    d = welch([3.3], B)
    assert d.p is None and d.low is None and d.note == NO_TEST and d.diff == pytest.approx(statistics.fmean(B) - 3.3)
    same = welch([3.0, 3.0], [3.1, 3.1])
    assert same.p is None and "no spread" in same.note


def test_runs_that_differ_only_by_seed_form_one_group_labelled_by_what_differs():
    runs = [RunFigures(f"a{s}", {"name": "cpu-tiny", "learning_rate": 0.002, "seed": s}, v, v / 0.69)
            for s, v in zip((1, 2, 3), A)]
    runs += [RunFigures(f"b{s}", {"name": "cpu-tiny", "learning_rate": 0.006, "seed": s}, v, v / 0.69)
             for s, v in zip((1, 2, 3), B)]
    runs.append(RunFigures("log", {}, 3.5))  # no config: a group of its own
    groups = group_by_seed(runs)
    assert [g.label for g in groups] == ["learning_rate=0.002", "learning_rate=0.006", "log"]
    assert [len(g.runs) for g in groups] == [3, 3, 1]
    s = spread(groups[0].values("val_loss"))
    assert s.n == 3 and s.mean == pytest.approx(statistics.fmean(A[:3])) and s.sd == pytest.approx(statistics.stdev(A[:3]))


def test_the_summary_says_significant_or_not_and_no_test_for_one_run():
    far = [3.0, 3.01, 3.005]
    groups = group_by_seed([RunFigures(f"a{i}", {"lr": 1, "seed": i}, v, v * 1.4, 0.28) for i, v in enumerate(A)]
                           + [RunFigures(f"b{i}", {"lr": 2, "seed": i}, v) for i, v in enumerate(far)]
                           + [RunFigures("c", {"lr": 3, "seed": 0}, 3.2)])
    text = "\n".join(summary_lines(groups))
    assert "A  lr=1: 4 runs (a0, a1, a2, a3)" in text
    assert f"val loss {statistics.fmean(A):.4f} ± {statistics.stdev(A):.4f}" in text
    assert "HellaSwag 0.2800 ± 0.0000" in text and "HellaSwag not scored" in text
    assert "significant at p < 0.01" in text and "not significant" not in text.split("B - A", 1)[1].split("\n")[0]
    assert f"C - A  val loss {3.2 - statistics.fmean(A):+.4f}; {NO_TEST}" in text
    table = "\n".join(summary_markdown(groups))
    assert "| B - A |" in table and "| C - B |" in table and "one run a side" in table
    close = group_by_seed([RunFigures("x1", {"lr": 1, "seed": 1}, 3.28), RunFigures("x2", {"lr": 1, "seed": 2}, 3.27),
                           RunFigures("y1", {"lr": 2, "seed": 1}, 3.275), RunFigures("y2", {"lr": 2, "seed": 2}, 3.28)])
    assert "not significant at p < 0.01" in "\n".join(summary_lines(close))
