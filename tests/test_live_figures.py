"""Issue 20, "live on the user's own card": whatever log_interval and the step time, the views' iteration, elapsed
time and ETA move at least every couple of seconds and a loss point comes every few, with no sync inside a step.

Steps are slowed by a step-time hook (Trainer._step plus a sleep), and the intervals of trainer.train.live_figures
scaled down with them, so log points (log_interval 1000) are far apart and only the live figures can move a view.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
import torch

from fwtui.headless import HeadlessPrinter
from fwtui.screens import run_position
from tests.dashboard_app import DashApp, FakeControls, text_of
from tests.dashboard_script import Finished, StateChanged, run_started, step
from tests.engine_helpers import train
from tests.tiny_trainer_child import tiny
from trainer.observe import events as ev
from trainer.observe.metrics import StepMetrics
from trainer.observe.runlog import EventLogWriter, read_events
from trainer.train import live_figures
from trainer.train.live_figures import LiveFigures
from trainer.train.loop import Trainer

STEP_SLEEP = 0.25  # seconds the hook adds to each step: far longer than the tiny model's own step
POINT = 0.6  # POINT_SECONDS scaled down: a live point started at least this often
PROGRESS = 0.2  # PROGRESS_SECONDS scaled down: every slowed step is followed by a Progress


@pytest.fixture
def slow_steps(monkeypatch):
    """The step-time hook: every optimizer step takes STEP_SLEEP longer; the live intervals scaled to match."""
    original = Trainer._step

    def slow(self, lr):
        time.sleep(STEP_SLEEP)
        return original(self, lr)

    monkeypatch.setattr(Trainer, "_step", slow)
    monkeypatch.setattr(live_figures, "POINT_SECONDS", POINT)
    monkeypatch.setattr(live_figures, "PROGRESS_SECONDS", PROGRESS)


@pytest.fixture(scope="module")
def data(pattern_data):
    return pattern_data


def test_slow_steps_far_from_log_points_still_send_progress_and_loss_points(data, tmp_path, slow_steps):
    rec, _, reason = train(data, tmp_path, tiny(max_iters=12, log_interval=1000, eval_interval=1000))
    assert reason == "completed"
    steps = rec.of(ev.Step)
    assert [s.iter for s in steps if s.log_point] == [0, 11]  # log_interval still spaces the log points
    live = [s for s in steps if not s.log_point]
    assert len(live) >= 3, [s.iter for s in steps]  # a loss point every ~POINT s in between
    assert all(0 < s.iter < 11 and s.loss == s.loss and s.tokens_per_sec > 0 for s in live)
    # One Progress after each step between the log points that did not bring a live point of its own.
    progress = [p.iter for p in rec.of(ev.Progress)]
    told = sorted(set(progress) | {s.iter for s in steps})
    assert told == list(range(12)), told  # every iteration was told: the views' counter moved every step
    # The ETA is known once a step window past the warm-up has closed: the log point at 0 and the first live
    # point's window hold the warm-up steps (EtaEstimator leaves them out), the second live point's does not.
    known_after = live[1].iter
    assert progress == sorted(progress)
    assert all(p.eta_seconds is not None for p in rec.of(ev.Progress) if p.iter > known_after)
    # The events follow each other in the log's order: no point goes back in time or iteration.
    news = [e for e in rec.events if isinstance(e, (ev.Step, ev.Progress))]
    assert [e.iter for e in news] == sorted(e.iter for e in news)
    # The headless print is still governed by log_interval: the two log points, nothing between.
    out = io.StringIO()
    printer = HeadlessPrinter(out)
    for event in rec.events:
        printer(event)
    assert [line.split(":")[0] for line in out.getvalue().splitlines() if line.startswith("iter ")] == \
        ["iter 0/12", "iter 11/12"]


def test_events_jsonl_stays_bounded_by_time_not_steps(data, tmp_path, monkeypatch):
    """Fast steps (milliseconds) and no log point for 300 of them: the log gets one Progress a PROGRESS and one
    live point a POINT at most, not one line a step."""
    monkeypatch.setattr(live_figures, "POINT_SECONDS", POINT)
    monkeypatch.setattr(live_figures, "PROGRESS_SECONDS", PROGRESS)
    log = EventLogWriter(tmp_path)
    started = time.monotonic()
    trainer = Trainer(tiny(max_iters=300, log_interval=1000, eval_interval=1000), data, tmp_path, sink=log)
    assert trainer.run() == "completed"
    seconds = time.monotonic() - started
    events = read_events(tmp_path)
    assert len([e for e in events if isinstance(e, ev.Progress)]) <= seconds / PROGRESS + 1
    assert len([e for e in events if isinstance(e, ev.Step) and not e.log_point]) <= seconds / POINT + 1


class FakeEvent:
    """A CUDA event stand-in: not complete until told."""

    def __init__(self) -> None:
        self.complete = False

    def query(self) -> bool:
        return self.complete


def test_on_a_gpu_the_loss_is_read_a_step_later_once_its_copy_completed(monkeypatch):
    """The CUDA path's order without a GPU: the copy is started at a due step, nothing is read while its event
    is not complete (query() only asks), and the point goes out, for the step it was copied at, once it is."""
    copies: list[FakeEvent] = []

    def copy_off_device(figures):
        copies.append(FakeEvent())
        return figures.clone(), copies[-1]

    now = [0.0]
    metrics = StepMetrics(tokens_per_iter=1024, flops_per_token=1e6, peak_flops=None, dataset_tokens=10**6,
                          max_iters=100, eval_interval=1000, always_save_checkpoint=False)
    figures = LiveFigures(metrics, "cuda:0", lambda it: 1e-3, point_seconds=5.0, progress_seconds=1.0,
                          clock=lambda: now[0])
    monkeypatch.setattr(figures, "_copy_off_device", copy_off_device)
    loss, norm, skipped = torch.tensor(3.25), torch.tensor(0.5), torch.tensor(0.0)

    def after(it: int, at: float) -> list[ev.Event]:
        now[0] = at
        metrics.add_step(0.7)
        return figures.after_step(it, loss + it, norm, skipped)

    assert after(0, 0.7) == [] and copies == []  # nothing due yet
    out = after(1, 5.6)  # 5 s since the start: a copy starts, a Progress goes out; nothing is read
    assert len(copies) == 1 and [type(e) for e in out] == [ev.Progress] and out[0].iter == 1
    assert after(2, 5.9) == []  # the copy is still on its way: no wait, no point, no Progress (0.3 s)
    copies[0].complete = True
    out = after(3, 7.0)
    point = next(e for e in out if isinstance(e, ev.Step))
    assert (point.iter, point.loss, point.log_point) == (1, 4.25, False)  # step 1's loss, read two steps later
    assert point.tokens_per_sec == pytest.approx(1024 / 0.7)
    assert [e.iter for e in out if isinstance(e, ev.Progress)] == [3]


SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES)
async def test_the_dashboard_moves_between_log_points_and_shows_where_it_paused(size, monkeypatch):
    """A 4070-like run (steps of 9.34 s, log_interval 50): the header follows Progress; elapsed and ETA move on
    by the wall clock between events; a pause and a stop show the boundary the run is really at."""
    app = DashApp(FakeControls())
    start = step(0)
    now = [start.time + 1.0]
    monkeypatch.setattr(run_position, "wall_clock", lambda: now[0])
    async with app.run_test(size=size) as pilot:
        dash = app.dash
        dash.feed(run_started(max_iters=200))
        dash.feed(start)  # the log point at iter 0
        await pilot.pause()
        assert dash.iteration == 0
        for i in range(1, 20):  # no log point until iter 50: only Progress
            now[0] = start.time + i * 9.34
            dash.feed(ev.Progress(time=now[0], iter=i, elapsed_seconds=i * 9.34, eta_seconds=(200 - i) * 9.34,
                                  tokens_seen=(i + 1) * 524_288, epoch=(i + 1) * 524_288 / 700_000_000))
        dash.redraw_now()
        await pilot.pause()
        assert dash.iteration == 19 and "iter 19 / 200" in text_of(app, "#header-right")
        assert "elapsed 2m57s" in text_of(app, "#time")  # 19 x 9.34 s = 177 s
        assert "tokens 10.5M" in text_of(app, "#time")  # 20 iterations of 524,288 tokens
        # 5 s later, no event: the clocks moved on (elapsed up, ETA down), the iteration did not.
        now[0] += 5
        dash._last_clock = dash._last_flush = 0.0  # the last redraw is old enough (the timer's own check)
        dash.tick_clock()
        await pilot.pause()
        assert "elapsed 3m02s" in text_of(app, "#time") and dash.iteration == 19
        # `p`: paused at the boundary 20 (19 steps told, the 20th done): the header says 20, and stops moving.
        dash.feed(StateChanged(time=now[0], iter=20, state="paused"))
        await pilot.pause()
        assert "iter 20 / 200" in text_of(app, "#header-right") and "PAUSED" in text_of(app, "#header-right")
        frozen = text_of(app, "#time")
        now[0] += 30
        dash._last_clock = dash._last_flush = 0.0
        dash.tick_clock()
        await pilot.pause()
        assert text_of(app, "#time") == frozen and "iter 20 of 200" in frozen
        dash.feed(StateChanged(time=now[0], iter=20, state="running"))
        dash.feed(Finished(time=now[0] + 9, iter=21, reason="stopped", seconds=200.0))
        await pilot.pause()
        assert dash.iteration == 21 and "iter 21 / 200" in text_of(app, "#header-right")


async def test_a_replayed_log_shows_what_it_says(monkeypatch):
    """Events made long ago (a log replayed by `fwtui view`, a run killed without a Finished): nothing moves on."""
    app = DashApp(None)
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.dash
        dash.feed(run_started(max_iters=200))
        dash.feed(step(10))  # made in 2023
        dash.redraw_now()
        await pilot.pause()
        shown = text_of(app, "#time")
        dash._last_clock = dash._last_flush = 0.0
        dash.tick_clock()
        await pilot.pause()
        assert text_of(app, "#time") == shown and "elapsed 1m33s" in shown


async def test_attach_to_a_run_with_slow_steps_moves_between_log_points(data, tmp_path: Path, slow_steps):
    """`fwtui attach` (and each tab of `fwtui serve`, which runs it): a real trainer writes RUN/events.jsonl with
    slowed steps and no log point after iter 0; the attached dashboard's iteration and loss curve still move."""
    from fwtui.commands.attach import build_attach_app

    run = tmp_path / "run"
    trainer = Trainer(tiny(max_iters=40, log_interval=1000, eval_interval=1000), data, run,
                      sink=EventLogWriter(run))
    worker = threading.Thread(target=trainer.run, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not (run / "events.jsonl").is_file() or not read_events(run):
            assert time.monotonic() < deadline, "the run wrote no events"
            time.sleep(0.1)
        app = build_attach_app(run)
        async with app.run_test(size=(120, 40)) as pilot:
            board = app.dashboard

            async def until(condition, what):
                while not condition():
                    assert time.monotonic() < deadline, f"gave up waiting for {what}"
                    await pilot.pause(0.1)

            await until(lambda: (board.iteration or 0) >= 2, "the first iterations")
            first, points = board.iteration, board.loss_points
            await until(lambda: board.iteration >= first + 3 and board.loss_points > points,
                        "later iterations and a live loss point, with no log point between")
            assert "iter 0" not in text_of(app, "#header-right")
            assert all(not s.log_point for s in read_events(run) if isinstance(s, ev.Step) and s.iter > 0)
    finally:
        trainer.controls.stop("test over")
        worker.join(60)


async def test_the_app_moves_between_log_points_and_pauses_and_stops_where_it_says(home: Path, slow_steps):
    """The app training cpu-tiny itself at 80x24, log_interval 1000: the header's iteration and the loss curve
    move with no log point after iter 0; `p` shows the boundary the run paused at, `q` the one it stopped at."""
    from fwtui.app import AppOptions, FwtuiApp
    from tests.conftest import synthetic_texts, write_fineweb_parquet

    data = write_fineweb_parquet(home / "shard.parquet", synthetic_texts(200), row_group_size=50)
    run = home / "run"
    extra = ["val_fraction=0.05", "log_interval=1000", "eval_iters=2", "eval_interval=1000", "max_iters=400",
             "batch_size=2", "block_size=64"]
    app = FwtuiApp(AppOptions(preset="cpu-tiny", data=str(data), out=str(run), overrides=extra, start=True),
                   gpu_probe=lambda: [], root=home)
    deadline = time.monotonic() + 120
    async with app.run_test(size=(80, 24)) as pilot:
        async def until(condition, what):
            while not condition():
                assert time.monotonic() < deadline, f"gave up waiting for {what}"
                await pilot.pause(0.1)

        await until(lambda: app.dashboard is not None and app.screen is app.dashboard, "the dashboard")
        board = app.dashboard
        await until(lambda: board.error_message is not None or (board.iteration or 0) >= 3, "iterations")
        assert board.error_message is None, board.error_message
        await until(lambda: board.loss_points >= 2, "a live loss point after the log point at iter 0")
        await pilot.press("p")
        await until(lambda: board.paused, "the pause")
        paused = [e for e in read_events(run) if isinstance(e, ev.StateChanged)][-1]
        await pilot.pause()
        assert board.iteration == paused.iter and f"iter {paused.iter} / 400" in text_of(app, "#header-right")
        await pilot.press("q")
        await pilot.press("y")
        await until(lambda: board.finished_reason is not None, "Finished")
        finished = [e for e in read_events(run) if isinstance(e, ev.Finished)][-1]
        assert board.iteration == finished.iter == paused.iter  # stopped at the boundary it paused at
    assert app.session is not None and app.session.done.wait(30)
