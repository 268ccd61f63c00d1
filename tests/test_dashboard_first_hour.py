"""The dashboard's smaller stumbles of a newcomer's first hour (issue 20), each at 80x24 and 120x40: the help and
sample modals that wrap inside their own columns, one scrollbar at a time, a log-y tokens/s chart with
several ticks, and no s/p/e/c offered for a run that is over."""

from __future__ import annotations

import dataclasses

import pytest

from fwtui.commands.attach import build_attach_app
from fwtui.screens.help import HelpModal
from fwtui.screens.sample_modal import SampleModal
from fwtui.widgets.charts import ThroughputChart
from tests.dashboard_app import DashApp, FakeControls, text_of
from tests.dashboard_script import T0, Sample, run_started, scripted_run, step
from tests.setup_helpers import settle
from tests.test_runs import make_run
from trainer.observe.events import Finished

SIZES = [(80, 24), (120, 40)]


def screen_lines(app) -> list[str]:
    """What the terminal shows, one string a row."""
    return ["".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips()]


def footer_text(app) -> str:
    return screen_lines(app)[-1]


@pytest.mark.parametrize("size", SIZES)
async def test_help_descriptions_wrap_in_their_own_column_and_all_keys_show(size):
    app = DashApp(FakeControls())
    async with app.run_test(size=size) as pilot:
        for event in scripted_run(100):
            app.dash.feed(event)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpModal)
        lines = screen_lines(app)
        first = next(line for line in lines if " s  sample: type a prompt" in line)
        column = first.index("sample: type")  # where every description starts
        start = lines.index(first)
        continued = lines[start + 1]  # "sample" is longer than the modal: its second line
        assert continued[column - 3:column].strip("│█ ") == ""  # nothing under the key column
        assert continued[column:].strip() and not continued[column].isspace()
        # the whole list can be read: the last key's line is there, or the list scrolls to it
        box = app.screen.query_one("#help-box")
        box.scroll_end(animate=False)
        await pilot.pause()
        assert any("scroll the dashboard" in line for line in screen_lines(app))


@pytest.mark.parametrize("size", SIZES)
async def test_the_sample_modal_lines_fit_without_wrapping(size):
    controls = FakeControls()
    app = DashApp(controls)
    async with app.run_test(size=size) as pilot:
        for event in scripted_run(100):
            app.dash.feed(event)
        await pilot.press("s", *"Hi", "enter")
        await pilot.pause()
        assert isinstance(app.screen, SampleModal)
        status = app.screen.query_one("#sample-status")
        assert status.size.height == 1 and "training pauses while it writes" in text_of(app, "#sample-status")
        app.dash.feed(Sample(time=T0 + 2000, iter=100, prompt="Hi", text=" there", seconds=12.34))
        await pilot.pause()
        assert status.size.height == 1
        assert text_of(app, "#sample-status") == "iter 100 · training paused 12 s · Enter asks again · Esc closes"
        title = app.screen.query_one("Vertical > Static")
        assert title.size.height == 1 and "Enter asks the run" in str(title.render())


async def test_one_scrollbar_at_a_time_at_80x24():
    app = DashApp(FakeControls())
    async with app.run_test(size=(80, 24)) as pilot:
        for event in scripted_run(1240):
            app.dash.feed(event)
        await pilot.pause()
        body, log = app.dash.query_one("#body"), app.dash.query_one("#log")
        await pilot.press("end")
        await pilot.pause()
        assert body.show_vertical_scrollbar and body.scrollbar_size_vertical == 1
        assert log.max_scroll_y > 0  # more lines than it shows, scrolled by the wheel: no bar beside the body's
        assert log.scrollbar_size_vertical == 0 or not log.show_vertical_scrollbar


async def test_the_log_y_tokens_per_second_chart_has_several_ticks():
    """A CPU run (no peak: the chart draws tokens/s) between 50k and 56k tok/s: log y once showed only 50k."""
    app = DashApp(FakeControls())
    async with app.run_test(size=(120, 40)) as pilot:
        app.dash.feed(run_started(peak_flops=None, device="cpu"))
        for i in range(0, 300, 10):
            app.dash.feed(dataclasses.replace(step(i, mfu=None, cpu=True), tokens_per_sec=50_500 + 20 * i))
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        chart = app.dash.query_one(ThroughputChart)
        assert "tok/s" in str(chart.border_title) and "log y" in str(chart.border_title)
        picture = chart.render().plain.split("\n")  # what the chart drew, without its border
        ticks = [line.split("┤")[0].strip() for line in picture if "┤" in line]
        assert len(ticks) >= 3 and all(label.endswith("k") for label in ticks), ticks


@pytest.mark.parametrize("size", SIZES)
async def test_attach_to_a_finished_run_offers_no_requests(tmp_path, size):
    run = make_run(tmp_path, "done", Finished(iter=4, reason="completed", seconds=5.0, final_val_loss=3.5), iters=5)
    app = build_attach_app(run)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, lambda: app.dashboard.finished is not None and "help" in footer_text(app))
        await pilot.pause()
        footer = footer_text(app)
        assert "q" in footer and "help" in footer
        for offer in ("sample", "pause", "eval", "checkpoint"):
            assert offer not in footer
        await pilot.press("p")  # pressed anyway: one line says why
        await pilot.pause()
        assert any("the run is over" in n.message for n in app._notifications)
        await pilot.press("question_mark")
        await pilot.pause()
        assert any("pause / resume" in line and "(the run is over)" in line for line in app.screen.lines())


async def test_the_app_s_own_running_run_still_offers_them():
    app = DashApp(FakeControls())
    async with app.run_test(size=(120, 40)) as pilot:
        for event in scripted_run(100):
            app.dash.feed(event)
        await settle(pilot, lambda: "checkpoint" in footer_text(app))  # the footer is drawn after the events
        footer = footer_text(app)
        assert all(offer in footer for offer in ("sample", "pause", "eval", "checkpoint")), footer
        app.dash.feed(Finished(time=T0 + 3000, iter=101, reason="stopped", seconds=900.0))
        await settle(pilot, lambda: "quit" in footer_text(app) and "sample" not in footer_text(app))
