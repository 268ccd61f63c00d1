"""Equal compute and reference lines: the x key's training-FLOPs axis (tokens x the run's FLOPs per token) in
the compare screen and the dashboard, the seeds' band arithmetic, and presets/references.toml drawn with `r`."""

from __future__ import annotations

import json

import pytest

from fwtui.chart_math import AxisMap, axis_scale, band
from fwtui.compared_runs import load_compared
from fwtui.screens.compare import CompareApp, CompareChart
from tests.dashboard_app import DashApp
from tests.dashboard_script import eval_at, run_started, step
from tests.test_compare import write_run
from trainer.config import preset_paths
from trainer.errors import ConfigError
from trainer.observe.references import load_references, parse_references


def test_the_flops_axis_is_tokens_times_flops_per_token_and_unknown_without_it():
    axis = AxisMap()
    for it in (0, 10, 20):
        axis.add(it, it * 1000, it * 2.0)
    assert axis.convert([10, 15], "flops") == []  # FLOPs per token unknown: the run is not drawn there
    axis.flops_per_token = 6e6
    assert axis.convert([10, 15], "flops") == [10_000 * 6e6, 15_000 * 6e6]
    axis.clear()
    assert axis.flops_per_token == 6e6  # the run's figure outlives its history
    assert axis_scale("flops", 3e15) == (1e15, "training FLOPs (PFLOP)")
    assert axis_scale("flops", 5e18) == (1e18, "training FLOPs (EFLOP)")


def test_band_is_the_mean_min_and_max_over_the_span_all_runs_cover():
    xs, mean, low, high = band([([0, 10, 20], [3.0, 2.0, 1.0]), ([0, 20], [5.0, 1.0]), ([5, 15], [9.0, 9.0])])
    assert xs == [10]  # the densest run's x values inside 5..15
    assert mean == [pytest.approx((2.0 + 3.0 + 9.0) / 3)] and low == [2.0] and high == [9.0]
    assert band([([], [])]) == ([], [], [], [])


async def test_compare_by_flops_puts_a_bigger_model_further_right_at_the_same_tokens(tmp_path):
    small = write_run(tmp_path, "small", 0, last_iter=200)
    big = write_run(tmp_path, "big", 1, last_iter=200)
    # the big run's RunStarted says 4x the FLOPs a token
    lines = (big / "events.jsonl").read_text().split("\n")
    started = json.loads(lines[1])
    assert started["kind"] == "run_started" and started["flops_per_token"] == 390_000_000
    lines[1] = json.dumps({**started, "flops_per_token": 1_560_000_000})
    (big / "events.jsonl").write_text("\n".join(lines))
    app = CompareApp([load_compared(str(small)), load_compared(str(big))])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("x", "x", "x")
        await pilot.pause()
        screen, chart = app.compare, app.compare.query_one(CompareChart)
        assert screen.chart_view.x_axis == "flops" and "by training FLOPs (PFLOP)" in chart.border_title
        rows, _, div = chart.placed(400)
        (_, small_x, *_), (_, big_x, *_) = rows
        assert big_x[-1] == pytest.approx(4 * small_x[-1])  # equal tokens, 4x the compute
        assert small_x[-1] * div == pytest.approx(step(200).tokens_seen * 390_000_000)


async def test_the_dashboards_x_key_reaches_flops():
    app = DashApp()
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.dash
        for event in [run_started(), *(step(i) for i in range(0, 500, 10)), eval_at(250)]:
            dash.feed(event)
        await pilot.press("x", "x", "x")
        dash.redraw_now()
        await pilot.pause()
        assert "by training FLOPs (PFLOP)" in dash.query_one("#loss-chart").border_title


def test_references_are_data_with_sources_and_a_bad_entry_is_one_line():
    refs = load_references()
    assert {(r.chart, r.value, r.label) for r in refs.lines} >= {("hellaswag", 0.2955, "GPT-2 124M"),
                                                                  ("hellaswag", 0.25, "chance"),
                                                                  ("loss", 3.28, "speed-run target 3.28")}
    assert all(r.source for r in refs.lines)
    curve = refs.curves_for("loss", "rtx4070-12gb")[0]
    assert curve.iters[:3] == (500, 1000, 2000) and curve.val[-1] == 4.17 and curve.train[1] == 4.93
    assert curve.xs("tokens")[0] == 500 * 524_288 and curve.xs("time") is None
    assert refs.curves_for("loss", "cpu-tiny") == []
    assert "references" not in preset_paths()  # not a preset
    with pytest.raises(ConfigError, match=r"x.toml curve #1: iters, train and val differ in length"):
        parse_references('[[curve]]\nchart="loss"\nlabel="a"\nsource="b"\npresets=[]\ntokens_per_iter=1\n'
                         'iters=[1,2]\ntrain=[1]\nval=[1,2]\n', "x.toml")
    with pytest.raises(ConfigError, match="chart 'acc' is not one of loss, hellaswag"):
        parse_references('[[line]]\nchart="acc"\nvalue=1\nlabel="a"\nsource="b"\n', "x.toml")


async def test_r_draws_the_reference_lines_on_the_loss_charts():
    app = DashApp()
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.dash
        for event in [run_started(), *(step(i) for i in range(0, 1500, 10)), eval_at(500), eval_at(1000)]:
            dash.feed(event)
        dash.redraw_now()
        await pilot.pause()
        chart = dash.query_one("#loss-chart")
        assert "speed-run" not in str(chart.render())  # off by default: the chart as it always was
        await pilot.press("r")
        dash.redraw_now()
        await pilot.pause()
        picture = str(chart.render())
        assert "speed-run target 3.28" in picture and "notes: 40M 12-layer" in picture  # rtx4070-12gb's curve


async def test_r_in_compare_toggles_references(tmp_path):
    run = write_run(tmp_path, "one", 0, last_iter=300)
    app = CompareApp([load_compared(str(run))])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        chart = app.compare.query_one(CompareChart)
        assert "speed-run" not in str(chart.render())
        await pilot.press("r")
        await pilot.pause()
        assert "speed-run target 3.28" in str(chart.render())
        assert "references" in str(app.compare.query_one("#compare-head").render())
