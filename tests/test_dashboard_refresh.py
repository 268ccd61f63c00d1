"""How often the dashboard redraws: throttled steps still show, the CPU budget stretches redraws within each
mode's ceilings, axes stay put, and only what changed is repainted. Scripted events, no torch."""

from __future__ import annotations

import pytest

from tests.dashboard_app import DashApp, FakeControls, log_text, text_of
from tests.dashboard_script import eval_at, run_started, scripted_run, step


async def test_a_lone_step_after_a_redraw_still_shows():
    from fwtui.screens.dashboard import PANEL_REFRESH_SECONDS
    app = DashApp(FakeControls())
    async with app.run_test(size=(80, 24)) as pilot:
        app.dash.feed(run_started())
        await pilot.pause()
        app.dash.feed(step(10))  # right after a redraw: throttled to the next panel refresh, not dropped
        await pilot.pause(app.dash.refresh_budget.numbers(PANEL_REFRESH_SECONDS) + 0.2)
        assert "iter 10 / 6,000" in text_of(app, "#header-right")


async def test_over_its_cpu_budget_the_dashboard_waits_longer_for_steps_but_not_for_evals():
    from fwtui.screens.dashboard import PANEL_REFRESH_SECONDS
    app = DashApp(FakeControls())
    async with app.run_test(size=(80, 24)) as pilot:
        app.dash.refresh_budget.stretch = 8  # as if the UI thread had gone over its budget
        app.dash.feed(run_started())
        await pilot.pause()
        app.dash.feed(step(10))
        await pilot.pause(PANEL_REFRESH_SECONDS + 0.2)  # the base interval has passed, the stretched one not
        assert "iter 10" not in text_of(app, "#header-right")
        app.dash.feed(eval_at(10))  # an eval is news: it shows at once, with the step before it
        await pilot.pause()
        assert "iter 10 / 6,000" in text_of(app, "#header-right")
        assert "iter 10 eval" in log_text(app.dash)


@pytest.mark.parametrize("device, in_process, charts_ceiling", [
    ("cpu", True, 10.0),  # the app's own CPU run: the only mode whose charts may wait past 2 s
    ("cuda:0", True, 2.0),
    ("cpu", False, 2.0),  # attach / serve / view: the run is another process's
])
async def test_however_far_over_budget_the_numbers_move_every_2_s_and_charts_by_mode(device, in_process,
                                                                                     charts_ceiling):
    from fwtui.screens.dashboard import CHART_STEADY_SECONDS, PANEL_REFRESH_SECONDS
    app = DashApp(FakeControls(), in_process=in_process)
    async with app.run_test(size=(80, 24)) as pilot:
        dash = app.dash
        dash.refresh_budget.stretch = 8  # as if the UI thread had gone far over its budget
        dash.feed(run_started(device=device))
        dash.feed(step(10, cpu=device == "cpu"))
        dash.feed(step(20, cpu=device == "cpu"))
        dash.feed(step(30, cpu=device == "cpu"))  # past the first points, which show at once
        await pilot.pause(0.8)
        assert dash.refresh_budget.numbers(PANEL_REFRESH_SECONDS) == 2.0
        assert dash.refresh_budget.charts(CHART_STEADY_SECONDS) == charts_ceiling
        drawn = dash._last_chart_redraw
        dash.feed(step(40, cpu=device == "cpu"))  # a steady step: waits for the stretched intervals
        await pilot.pause(2.8)  # past the 2 s ceilings (and the chart timer's 0.5 s tick)
        assert "iter 40 / 6,000" in text_of(app, "#header-right")  # the numbers moved within 2 s
        assert (dash._last_chart_redraw > drawn) == (charts_ceiling == 2.0)


def test_axes_round_up_so_new_points_do_not_move_them():
    from fwtui.widgets.charts import nice_ceil, tick_values, x_limits, y_limits
    assert nice_ceil(1130) == 1200 and nice_ceil(0.37) == 0.4 and nice_ceil(1000) == 1000
    assert x_limits(0, 1240) == (0, 1500) and x_limits(0, 1290) == (0, 1500)  # the axis stays
    assert tick_values(0, 1500) == [0, 500, 1000, 1500]
    lo, hi = y_limits(3.31, 10.8)
    assert lo <= 3.31 and hi >= 10.8 and y_limits(3.33, 10.8) == (lo, hi)


async def test_panels_and_charts_repaint_only_what_changed():
    from fwtui.widgets.charts import LossChart
    app = DashApp(FakeControls())
    async with app.run_test(size=(120, 40)) as pilot:
        for event in scripted_run(1240):
            app.dash.feed(event)
        app.dash.redraw_now()
        await pilot.pause()
        chart = app.dash.query_one(LossChart)
        assert chart.redraw() is False  # the same picture: nothing sent to the terminal
        time_panel = app.dash.query_one("#time")
        assert time_panel.show_text(time_panel.shown.copy()) is False
        before = list(chart._lines)
        app.dash.feed(step(1250))  # inside the axes (0-1,500, 3.2-11.2): only the curve's end changes
        assert chart.redraw() is True
        changed = sum(a != b for a, b in zip(before, chart._lines))
        assert 0 < changed <= 3 and len(chart._lines) == len(before)
