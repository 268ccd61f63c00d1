"""`fwtui compare` and the chart keys: scripted runs written as events.jsonl, read back, drawn and snapshotted.

Snapshots: 3 runs at 120x40, 5 runs at 80x24 with x / l / m pressed, each taken once the screen's reading
thread has brought every run back (`all_read`: no clock, it waits for the runs). Update after an intended change
with `pytest tests/test_compare.py --snapshot-update` and look at the SVGs in tests/__snapshots__/.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from fwtui.chart_math import ema_series
from fwtui.cli import main as cli_main
from fwtui.compared_runs import load_compared
from fwtui.screens.compare import CompareApp, CompareChart, CompareScreen, RunPicker
from tests.dashboard_app import DashApp
from tests.dashboard_script import eval_at, run_started, step
from trainer.observe.runlog import EventLogWriter

NAMES = ("baseline", "lr-2x", "wide-768", "deep-12", "warmup-long")


def write_run(root: Path, name: str, k: int, last_iter: int = 1000) -> Path:
    """A run whose losses are the script's times (1 + 0.04 k): run k is a little worse than run k-1."""
    run = root / name
    run.mkdir(parents=True)
    writer = EventLogWriter(run)
    writer(dataclasses.replace(run_started(), run_dir=str(run), config={"name": f"preset-{k}"}))
    for i in range(0, last_iter + 1, 10):
        s = step(i)
        writer(dataclasses.replace(s, loss=s.loss * (1 + 0.04 * k)))
        if i and i % 250 == 0:
            e = eval_at(i)
            writer(dataclasses.replace(e, val_loss=e.val_loss * (1 + 0.04 * k)))
    writer.close()
    return run


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    return [write_run(tmp_path / "runs", name, k) for k, name in enumerate(NAMES)]


async def all_read(pilot) -> None:
    """Let the compare screen's reading thread bring every run back (pauses until none is reading)."""
    await pilot.pause()  # the screen is up and has started its reading thread
    screen = pilot.app.screen
    await pilot.app.workers.wait_for_complete()
    for _ in range(50):  # each pause lets the posted RunRead messages be handled
        if not screen.reading:
            break
        await pilot.pause()
    assert not screen.reading, "the compare screen never got its runs back"


def test_a_run_reads_back_with_its_figures(runs):
    run = load_compared(str(runs[1]))
    assert run.name == "lr-2x" and run.preset == "preset-1" and run.last_iter == 1000
    assert run.final_train == pytest.approx(step(1000).loss * 1.04)
    assert run.best_val == pytest.approx(eval_at(1000).val_loss * 1.04)
    assert run.tokens_seen == 1000 * 524_288
    assert len(run.curves.train) == 101 and len(run.curves.val) == 4


def test_the_smoothed_curve_is_the_debiased_ema_of_every_logged_loss(runs):
    run = load_compared(str(runs[0]))
    losses = [step(i).loss for i in range(0, 1001, 10)]
    _, smoothed = run.curves.train_series(10_000, 0.9)
    assert smoothed == pytest.approx(ema_series(losses, 0.9))


def test_tokens_axis_puts_evals_where_their_steps_are(runs):
    run = load_compared(str(runs[0]))
    assert run.curves.axis.convert([250.0], "tokens") == pytest.approx([250 * 524_288])
    assert run.curves.axis.convert([500.0], "time") == pytest.approx([500 * 9.34])


def test_a_run_that_is_not_there_stops_the_command_in_one_line(tmp_path, capsys):
    assert cli_main(["compare", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing: no such run directory or log file" in err
    (tmp_path / "not-a-run").mkdir()
    assert cli_main(["compare", str(tmp_path / "not-a-run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "a directory with no events.jsonl" in err


async def test_a_run_without_steps_says_so_on_its_legend_line_and_the_others_draw(tmp_path, runs):
    empty = tmp_path / "empty"
    empty.mkdir()
    writer = EventLogWriter(empty)
    writer(run_started())
    writer.close()
    app = CompareApp([str(empty), str(runs[0])])
    async with app.run_test(size=(120, 40)) as pilot:
        await all_read(pilot)
        legend = str(app.compare.query_one("#compare-legend").render()).splitlines()
        assert legend[0].startswith("━━ empty") and "no logged step or eval to draw yet" in legend[0]
        assert "baseline" in legend[1] and "iter 1,000" in legend[1]
        assert app.compare.query_one(CompareChart)._lines  # the other run's curve is drawn


async def test_the_first_frame_comes_before_the_logs_are_read_and_keys_never_wait(runs):
    """The reader blocks until the test lets it go: the screen is up, says "reading...", answers x / l / m."""
    release, started = threading.Event(), threading.Event()

    def blocked_reader(path: str, pace):
        started.set()
        if not release.wait(timeout=60):  # never hang the suite if the test fails before releasing it
            raise RuntimeError("the test never released the reader")
        return load_compared(path, pace)

    app = CompareApp([str(p) for p in runs[:3]], reader=blocked_reader)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            screen = app.compare
            assert app.screen is screen and screen.reading == 3
            assert started.is_set()  # the first frame is up and the thread is inside the reader, held there
            legend = str(screen.query_one("#compare-legend").render()).splitlines()
            assert legend[:3] == ["━━ baseline  reading...", "━━ lr-2x  reading...", "━━ wide-768  reading..."]
            assert "3 runs (3 reading...)" in str(screen.query_one("#compare-head").render())
            assert any("reading the runs' logs" in line for line in screen.query_one(CompareChart)._lines)
            await pilot.press("x", "l", "m")  # answered while every log is still unread
            assert (screen.chart_view.x_axis, screen.chart_view.log_y, screen.chart_view.smoothing) == (
                "tokens", True, 0.6)
            release.set()
            await all_read(pilot)
            assert [r.last_iter for r in screen.runs] == [1000, 1000, 1000]
            assert "iter 1,000" in str(screen.query_one("#compare-legend").render())
            assert "by tokens (M)" in screen.query_one(CompareChart).border_title
    finally:
        release.set()


async def test_keys_change_the_axis_the_scale_and_the_smoothing(runs):
    app = CompareApp([load_compared(str(p)) for p in runs[:2]])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen, chart = app.compare, app.compare.query_one(CompareChart)
        assert "by iter" in chart.border_title
        await pilot.press("x")
        await pilot.pause()
        assert screen.chart_view.x_axis == "tokens" and "by tokens (M)" in chart.border_title
        await pilot.press("x", "l", "m", "m")
        await pilot.pause()
        assert (screen.chart_view.x_axis, screen.chart_view.log_y, screen.chart_view.smoothing) == ("time", True, 0.9)
        assert "wall time (h)" in chart.border_title
        assert "EMA 0.9 (debiased)" in str(screen.query_one("#compare-head").render())
        await pilot.press("q")
    assert not app.is_running


async def test_dashboard_chart_keys_change_every_chart(runs):
    app = DashApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        dash = app.dash
        for event in [run_started(), *(step(i) for i in range(0, 500, 10)), eval_at(250)]:
            dash.feed(event)
        dash.redraw_now()
        await pilot.pause()
        await pilot.press("x", "l", "m")
        await pilot.pause()
        loss_title = dash.query_one("#loss-chart").border_title
        assert "tokens (M)" in loss_title and "log y" in loss_title and "EMA 0.6" in loss_title
        assert "by tokens (M) · log y" in dash.query_one("#throughput-chart").border_title


async def test_a_in_the_dashboard_adds_runs_from_the_runs_directory(runs):
    app = DashApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.dash.feed(dataclasses.replace(run_started(), run_dir=str(runs[0])))
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, RunPicker)
        await pilot.press("space", "down", "space", "c")  # the newest two others (same start: by name)
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        names = [r.name for r in app.screen.runs]
        assert names[0] == "baseline" and len(names) == 3
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("space", "c")
        await pilot.pause()
        assert len(app.screen.runs) == 4
        await pilot.press("q")
        await pilot.pause()
        assert app.screen is app.dash


async def test_closing_the_screen_stops_its_reading_thread(runs):
    """A log still being read when the user quits: the thread's next pace point ends it (no reading on after)."""
    inside, ended = threading.Event(), threading.Event()

    def endless_reader(path: str, pace):
        try:
            while True:  # a log that never ends: only the screen going away stops it
                inside.set()
                pace()
                ended.wait(0.001)
        finally:
            ended.set()

    app = CompareApp([str(runs[0])], reader=endless_reader)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert inside.wait(10) and not ended.is_set()
        await pilot.press("q")
    assert ended.wait(10), "the reading thread went on after its screen closed"


async def test_the_fast_line_conversion_is_textuals_own_segment_for_segment(runs):
    """fwtui.widgets.plot_strips against Textual's general path (rich's ANSI decoder, Content, to_strips) on every
    line of the compare chart in every axis, scale and EMA: the same segments, or None (the general path then)."""
    from rich.text import Text
    from textual.visual import Visual, visualize

    from fwtui.widgets.plot_strips import plot_line_strip

    app = CompareApp([str(p) for p in runs])
    async with app.run_test(size=(120, 40)) as pilot:
        await all_read(pilot)
        screen, chart = app.compare, app.compare.query_one(CompareChart)
        fast_lines = 0
        for x_axis in ("iter", "tokens", "time"):
            for log_y in (False, True):
                for smoothing in (0.0, 0.9):
                    screen.chart_view.x_axis, screen.chart_view.log_y = x_axis, log_y
                    screen.chart_view.smoothing = smoothing
                    for line in chart._plot_ansi().split("\n"):
                        fast = plot_line_strip(line, chart.visual_style.rich_style, chart.size.width)
                        if fast is None:
                            continue
                        general = Visual.to_strips(chart, visualize(chart, Text.from_ansi(line), markup=False),
                                                   chart.size.width, 1, chart.visual_style)[0]
                        assert list(fast) == list(general) and fast.cell_length == general.cell_length
                        fast_lines += 1
        assert fast_lines >= 12 * 30  # every drawn line of the 12 pictures (only empty ones go the general way)


def test_compare_three_runs_wide(snap_compare, runs):
    app = CompareApp([str(p) for p in runs[:3]])  # as `fwtui compare` opens them: read after the first frame
    assert snap_compare(app, terminal_size=(120, 40), run_before=all_read)


def test_compare_five_runs_narrow_tokens_log_ema(snap_compare, runs):
    app = CompareApp([str(p) for p in runs])
    assert snap_compare(app, terminal_size=(80, 24), press=["x", "l", "m", "m"], run_before=all_read)
