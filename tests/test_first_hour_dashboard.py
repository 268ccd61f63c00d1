"""Issue 20, section 2, on the dashboard (Textual's pilot at 80×24 and 120×40): a completed run reads as ended at
its last iteration in the app, attach and view; a health finding gives one epochs figure wherever it shows; long
event lines wrap and the events panel scrolls up and down.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fwtui.app import AppOptions, FwtuiApp
from fwtui.commands.attach import build_attach_app
from fwtui.run_logs import load
from fwtui.viewer import ViewerApp
from fwtui.widgets.panels import EventLog
from tests.dashboard_app import DashApp, log_text, text_of
from tests.dashboard_script import run_started
from tests.setup_helpers import settle
from trainer.observe.events import Eval, Finished, Step, Warning
from trainer.runs.launch import RunRequest, run_training

SIZES = [(80, 24), (120, 40)]
MAX_ITERS = 6
RUN = ["max_iters=6", "log_interval=1", "eval_interval=1000", "eval_iters=2", "batch_size=2", "block_size=32",
       "warmup_iters=2"]


@pytest.fixture(scope="module")
def completed_run(pattern_data, tmp_path_factory) -> Path:
    """A real cpu-tiny run of 6 iterations, completed: its last Step is iteration 5, its Finished iteration 6."""
    run_dir = tmp_path_factory.mktemp("completed") / "run"
    run_training(RunRequest(preset="cpu-tiny", data=str(pattern_data.dir), out=run_dir, overrides=RUN), lambda e: None)
    return run_dir


def header(app) -> str:
    return text_of(app, "#header-right")


def assert_reads_as_ended(text: str) -> None:
    assert f"iter {MAX_ITERS} / {MAX_ITERS}" in text and "100" in text and "finished" in text, text


@pytest.mark.parametrize("size", SIZES)
async def test_attach_and_view_of_a_completed_run_read_its_last_iteration(completed_run: Path, size) -> None:
    for app in (build_attach_app(completed_run),
                ViewerApp(lambda events=[load(str(completed_run / "events.jsonl"), None)[0]]:
                          events.pop() if events else [], controls=None, title="view")):
        async with app.run_test(size=size) as pilot:
            await settle(pilot, lambda: app.dashboard.finished is not None)
            await pilot.pause()
            assert_reads_as_ended(header(app))


@pytest.mark.parametrize("size", SIZES)
async def test_the_app_reads_its_completed_run_at_its_last_iteration(home: Path, pattern_data, size) -> None:
    app = FwtuiApp(AppOptions(preset="cpu-tiny", data=str(pattern_data.dir), overrides=RUN, start=True,
                              out=str(home / "run")), gpu_probe=lambda: [], root=home)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, lambda: app.dashboard is not None and app.dashboard.run_over, limit=120)
        assert app.dashboard.error_message is None, app.dashboard.error_message
        app.dashboard.redraw_now()
        await pilot.pause()
        assert_reads_as_ended(header(app))


TOKENS_PER_ITER = 524_288
DATASET_TOKENS = 1250 * TOKENS_PER_ITER  # 250 iterations are 0.20 epochs


def step(i: int) -> Step:
    """A Step as the trainer writes it: iteration i done, so i + 1 iterations' tokens seen."""
    seen = (i + 1) * TOKENS_PER_ITER
    return Step(time=1e9 + i, iter=i, loss=3.0, lr=6e-4, step_seconds=1.0, tokens_per_sec=5e5, mfu=0.4,
                mem_allocated_bytes=None, mem_reserved_bytes=None, mem_peak_bytes=None, mem_total_bytes=None,
                tokens_seen=seen, epoch=seen / DATASET_TOKENS, elapsed_seconds=float(i), eta_seconds=100.0)


@pytest.mark.parametrize("size", SIZES)
async def test_a_gap_finding_gives_one_epochs_figure_in_event_health_line_and_time_panel(size) -> None:
    """log_interval 50, eval at 250: the eval lands when the last Step is 200's (0.16 epochs); the figure is
    the eval's own, 250 iterations' worth (0.20), and stays so as Steps arrive."""
    app = DashApp()
    async with app.run_test(size=size) as pilot:
        dash = app.dash
        started = run_started(max_iters=1000)
        dash.feed(started.__class__(**{**started.__dict__, "tokens_per_iter": TOKENS_PER_ITER,
                                       "dataset_tokens": DATASET_TOKENS}))
        for i in range(0, 201, 50):
            dash.feed(step(i))
        dash.feed(Eval(time=1e9 + 250, iter=250, train_loss=3.0, val_loss=3.5, best_val_loss=3.5, seconds=1.0))
        await pilot.pause()
        dash.feed(step(250))
        dash.redraw_now()
        await pilot.pause()
        dash._flush(force_health=True)
        await pilot.pause()
        event_line = next(line for line in log_text(dash).splitlines() if "train/val gap" in line)
        health_line = text_of(app, "#health")
        assert "after 0.20 epochs" in event_line, event_line
        assert "after 0.20 epochs" in " ".join(health_line.split()), health_line
        assert "epoch 0.20" in text_of(app, "#time")


LONG = ("HellaSwag could not run: hellaswag_val.jsonl is not in fwtui's cache and this machine is offline; "
        "either copy the file there from a machine online (fwtui eval RUN --limit 1 downloads it) or pass "
        "--hellaswag-file FILE with its path, then press h again END-OF-THE-FIX")


@pytest.mark.parametrize("size", SIZES)
async def test_long_event_lines_wrap_and_the_panel_scrolls_up_and_down(size) -> None:
    app = DashApp()
    async with app.run_test(size=size) as pilot:
        dash = app.dash
        dash.feed(run_started())
        dash.feed(Warning(time=1e9, message=LONG))
        for i in range(40):
            dash.feed(Warning(time=1e9 + i, message=f"line {i}"))
        await pilot.pause()
        dash.redraw_now()
        await pilot.pause()
        log = dash.query_one(EventLog)
        shown = " ".join(strip.text.strip() for strip in log.lines)
        assert "END-OF-THE-FIX" in shown  # the whole fix is on screen, wrapped
        width = log.scrollable_content_region.width
        assert all(strip.cell_length <= width for strip in log.lines)
        assert log.max_scroll_x == 0 and log.max_scroll_y > 0  # no sideways scrolling; up and down
        log.scroll_home(animate=False)
        await pilot.pause()
        assert log.scroll_y == 0
