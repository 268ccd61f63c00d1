"""`fwtui compare` and the chart keys: scripted runs written as events.jsonl, read back, drawn and snapshotted.

Snapshots: 3 runs at 120x40, 5 runs at 80x24 with x / l / m pressed. Update after an intended change with
`pytest tests/test_compare.py --snapshot-update` and look at the SVGs in tests/__snapshots__/.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fwtui.chart_math import ema_series
from fwtui.cli import main as cli_main
from fwtui.screens.compare import CompareApp, CompareChart, CompareScreen, RunPicker, load_compared
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


def test_a_run_without_steps_says_so_in_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    writer = EventLogWriter(empty)
    writer(run_started())
    writer.close()
    assert cli_main(["compare", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no logged step or eval" in err
    assert cli_main(["compare", str(tmp_path / "missing")]) == 2


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


def test_compare_three_runs_wide(snap_compare, runs):
    app = CompareApp([load_compared(str(p)) for p in runs[:3]])
    assert snap_compare(app, terminal_size=(120, 40))


def test_compare_five_runs_narrow_tokens_log_ema(snap_compare, runs):
    app = CompareApp([load_compared(str(p)) for p in runs])
    assert snap_compare(app, terminal_size=(80, 24), press=["x", "l", "m", "m"])
