"""The dashboard fed scripted events (no torch): what it shows, what its keys ask of the run, how it ends."""

from __future__ import annotations

import dataclasses
import sys

from textual.widgets import Input

from fwtui.screens.confirm import ConfirmModal
from fwtui.screens.help import HelpModal
from fwtui.screens.sample_modal import SampleModal
from fwtui.widgets.panels import EventLog
from tests.dashboard_app import DashApp, FakeControls, log_text, text_of
from trainer.observe.events import RunStarted
from tests.dashboard_script import (SAMPLE_TEXT, T0, Failed, Finished, Sample, StateChanged, eval_at, run_started,
                                    scripted_run, step)


async def test_panels_show_the_fed_run():
    app = DashApp(FakeControls())
    async with app.run_test(size=(120, 40)) as pilot:
        for event in scripted_run(1240):
            app.dash.feed(event)
        await pilot.pause()
        dash = app.dash
        assert dash.iteration == 1240
        assert dash.loss_points == 125  # steps every 10 iterations, 0..1240
        assert len(dash.val_loss) == 4
        assert "iter 1,240 / 6,000" in text_of(app, "#header-right")
        assert "20.7%" in text_of(app, "#header-right")
        assert "rtx4070-12gb (63.52M)" in text_of(app, "#header-left")
        memory = text_of(app, "#memory")
        assert "allocated 9.8 of 12.0 GB" in memory and "peak 10.1" in memory
        time_text = text_of(app, "#time")
        assert "iter 1,240 of 6,000" in time_text
        assert "elapsed 3h13m" in time_text and "left ≈ 12h24m" in time_text
        # Finish time = the step's time + its ETA, shown in the zone the screen was given (UTC here).
        assert "done ≈ 13:51" in time_text
        assert "MFU 40.8% of 58.3 TFLOP/s (table: bf16 dense)" in text_of(app, "#throughput")
        assert dash.latest_sample_text == SAMPLE_TEXT
        assert "latest sample · iter 1,000" in dash.query_one("#sample").border_title
        log = log_text(dash)
        assert "iter 1,000 eval: train 3.34 · val 3.38" in log
        assert "checkpoint (eval): 0.8 GB in 1.20 s" in log
        assert "WARNING: loss spike" in log


async def test_a_run_on_several_gpus_names_the_world_and_the_cards():
    """Two ranks on one kind of card: the header says 2 x the card, throughput is all ranks', MFU per GPU
    is also the total (Step.mfu: total tokens/s / world size against one card's peak)."""
    app = DashApp(FakeControls())
    async with app.run_test(size=(120, 40)) as pilot:
        two = dataclasses.replace(run_started(), world_size=2,
                                  device_names=["NVIDIA GeForce RTX 4070", "NVIDIA GeForce RTX 4070"])
        for event in scripted_run(1240):
            app.dash.feed(two if isinstance(event, RunStarted) else event)
        await pilot.pause()
        assert "2 × NVIDIA GeForce RTX 4070, 12.0 GB each" in text_of(app, "#header-left")
        throughput = text_of(app, "#throughput")
        assert "(all 2 ranks)" in throughput and "per GPU and in total" in throughput


async def test_charts_draw_the_histories():
    app = DashApp(FakeControls())
    async with app.run_test(size=(120, 40)) as pilot:
        for event in scripted_run(500):
            app.dash.feed(event)
        app.dash.redraw_now()
        await pilot.pause()
        loss_chart = str(app.dash.query_one("#loss-chart").render())
        assert "train" in loss_chart and "val" in loss_chart  # legend at this width
        assert sum("\u2801" <= c <= "\u28ff" for c in loss_chart) > 20  # the train curve, in braille dots
        assert loss_chart.count("o") >= 2  # val points ("o"), readable without colour
        assert app.dash.query_one("#throughput-chart").border_title == "MFU % by iter"


async def test_unknown_peak_says_mfu_unknown_and_why():
    app = DashApp(FakeControls())
    async with app.run_test(size=(120, 40)) as pilot:
        app.dash.feed(run_started(peak_flops=None, device="cpu"))
        app.dash.feed(step(10, mfu=None, cpu=True))
        app.dash.redraw_now()
        await pilot.pause()
        throughput = text_of(app, "#throughput")
        assert "MFU unknown (peak unknown: no table entry for this device" in throughput
        assert "TFLOP/s" not in throughput  # never a made-up peak
        assert "RSS 1.2 GB of 16.0 GB" in text_of(app, "#memory")
        assert app.dash.query_one("#memory").border_title == "memory (CPU, RSS)"
        assert app.dash.query_one("#throughput-chart").border_title == "tok/s by iter"


async def test_prepare_panel_before_the_run_starts():
    from tests.dashboard_script import prepare_events
    app = DashApp(FakeControls())
    async with app.run_test(size=(80, 24)) as pilot:
        for event in prepare_events():
            app.dash.feed(event)
        await pilot.pause()
        prepare = text_of(app, "#prepare")
        assert "40%" in prepare and "documents 120,000" in prepare and "left ≈ 1m30s" in prepare
        assert app.dash.query_one("#prepare").display and not app.dash.query_one("#run-panels").display
        app.dash.feed(run_started())
        await pilot.pause()
        assert not app.dash.query_one("#prepare").display and app.dash.query_one("#run-panels").display


async def test_sample_key_asks_the_trainer_and_shows_the_answer():
    controls = FakeControls()
    app = DashApp(controls)
    async with app.run_test(size=(120, 40)) as pilot:
        app.dash.feed(run_started())
        app.dash.feed(step(10))
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SampleModal)
        await pilot.press(*"Once upon", "enter")
        await pilot.pause()
        assert controls.calls == [("sample", "Once upon", 200, 0.8, 200)]
        assert "training pauses while it writes" in text_of(app, "#sample-status")
        app.dash.feed(step(20))  # training goes on until the step boundary that serves the request
        app.dash.feed(Sample(time=T0 + 300, iter=20, prompt="Once upon", text=" a time there was a GPU.",
                             seconds=0.5))
        await pilot.pause()
        assert app.screen.generated_text == " a time there was a GPU."
        assert "a time there was a GPU." in text_of(app, "#sample-text")
        assert "training paused 0.50 s · Enter asks again" in text_of(app, "#sample-status")
        assert app.dash.iteration == 20
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.dash
        assert app.dash.latest_sample_text == " a time there was a GPU."


async def test_empty_prompt_asks_for_the_start_of_a_text():
    controls = FakeControls()
    app = DashApp(controls)
    async with app.run_test(size=(80, 24)) as pilot:
        app.dash.feed(run_started())
        await pilot.press("s")
        await pilot.pause()
        assert app.screen.query_one(Input).value == ""
        await pilot.press("enter")
        assert controls.calls == [("sample", "\n", 200, 0.8, 200)]


async def test_pause_eval_checkpoint_keys_call_the_controls():
    controls = FakeControls()
    app = DashApp(controls)
    async with app.run_test(size=(80, 24)) as pilot:
        app.dash.feed(run_started())
        await pilot.press("p", "e", "c", "p")
        assert controls.calls == [("toggle_pause",), ("eval",), ("checkpoint",), ("toggle_pause",)]
        app.dash.feed(StateChanged(time=T0 + 5, iter=0, state="paused"))
        await pilot.pause()
        assert "PAUSED" in text_of(app, "#header-right")
        assert "iter 0 paused" in log_text(app.dash)


async def test_quit_confirms_stops_and_exits_on_finished():
    controls = FakeControls()
    app = DashApp(controls)
    async with app.run_test(size=(80, 24)) as pilot:
        app.dash.feed(run_started())
        app.dash.feed(step(10))
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await pilot.pause()
        assert controls.calls == [] and app.screen is app.dash
        await pilot.press("q", "y")
        await pilot.pause()
        assert controls.calls == [("stop", "quit")]
        assert "stopping at the next step boundary" in text_of(app, "#header-right")
        assert app.is_running
        app.dash.feed(Finished(time=T0 + 400, iter=20, reason="stopped", seconds=400.0))
        await pilot.pause()
        assert app.dash.finished_reason == "stopped"
    assert not app.is_running
    assert app.return_code == 0


async def test_attached_view_detaches_without_stopping_the_run():
    controls = FakeControls()
    app = DashApp(controls, attach=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.dash.feed(run_started())
        await pilot.press("q")
        await pilot.pause()
        assert "The run goes on" in text_of(app, "#confirm-question")
        await pilot.press("y")
        await pilot.pause()
    assert not app.is_running
    assert controls.calls == []


async def test_replay_keys_say_not_available_and_q_exits_at_once():
    app = DashApp(None)
    async with app.run_test(size=(80, 24)) as pilot:
        for event in scripted_run(100):
            app.dash.feed(event)
        await pilot.press("s", "p")
        await pilot.pause()
        assert app.screen is app.dash  # no sample modal without a run to ask
        messages = [n.message for n in app._notifications]
        assert messages and all("not available in a replay" in m for m in messages)
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running


async def test_failed_run_shows_the_error_and_stays_usable():
    app = DashApp(FakeControls())
    async with app.run_test(size=(80, 24)) as pilot:
        app.dash.feed(run_started())
        app.dash.feed(step(10))
        app.dash.feed(Failed(time=T0 + 100, message="CUDA out of memory at batch_size 12: lower batch_size", iter=10))
        await pilot.pause()
        assert app.dash.error_message.startswith("CUDA out of memory")
        assert app.dash.query_one("#error").display
        assert text_of(app, "#error").startswith("ERROR (at iter 10): CUDA out of memory")
        assert "FAILED" in text_of(app, "#header-right")
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpModal)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("q")  # the run is over: no question, just leave
        await pilot.pause()
    assert not app.is_running


async def test_events_out_of_order_keep_the_latest_iteration():
    app = DashApp(FakeControls())
    async with app.run_test(size=(80, 24)) as pilot:
        app.dash.feed(step(30))  # a Step before RunStarted (a partial replay) must not break anything
        app.dash.feed(run_started())
        app.dash.feed(step(50))
        app.dash.feed(step(40))
        app.dash.feed(eval_at(50))
        await pilot.pause()
        assert app.dash.iteration == 50
        assert "iter 50 / 6,000" in text_of(app, "#header-right")


async def test_replay_of_5000_steps_stays_bounded():
    app = DashApp(None, history_points=500)
    async with app.run_test(size=(120, 40)) as pilot:
        app.dash.feed(run_started(max_iters=5000))
        for i in range(5000):
            app.dash.feed(step(i))
            if i % 100 == 0:
                app.dash.feed(eval_at(i))
        await pilot.pause()
        app.dash.redraw_now()
        await pilot.pause()
        dash = app.dash
        assert dash.iteration == 4999
        assert 250 <= dash.loss_points <= 500
        assert dash.train_loss.points[0][0] == 0 and dash.train_loss.latest[0] == 4999  # spans the whole run
        assert len(dash.mfu_percent) <= 500 and len(dash.tokens_per_sec) <= 500
        assert len(dash.query_one(EventLog).lines) <= 1000


def test_dashboard_and_panels_do_not_import_torch():
    import subprocess
    code = ("import sys, fwtui.screens.dashboard, fwtui.screens.sample_modal, fwtui.widgets.charts; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_events_fed_before_the_screen_is_shown_appear_once_it_is():
    app = DashApp(FakeControls())
    for event in scripted_run(300):  # e.g. a replay read before the app pushed the screen
        app.dash.feed(event)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.dash.iteration == 300
        assert "iter 300 / 6,000" in text_of(app, "#header-right")
        assert "iter 250 eval" in log_text(app.dash)


async def test_memory_and_time_panels_show_all_their_lines_before_any_sample():
    # A grid row sized `auto` kept the height of the panels' first, one-line text: "elapsed", "done" and
    # "tokens" were cut off until a sample made the row lay out again.
    for size in ((120, 40), (80, 24)):
        app = DashApp(FakeControls())
        async with app.run_test(size=size) as pilot:
            app.dash.feed(run_started())
            await pilot.pause()
            for i in range(10, 60, 10):
                app.dash.feed(step(i))
            app.dash.redraw_now()
            await pilot.pause()
            for panel in ("#memory", "#time"):
                widget = app.dash.query_one(panel)
                lines = str(widget.render()).count("\n") + 1
                assert lines >= 3 and widget.content_size.height >= lines, (size, panel)


async def test_health_line_shows_a_nan_and_logs_it_once():
    import math
    from dataclasses import replace
    app = DashApp(FakeControls())
    async with app.run_test(size=(120, 40)) as pilot:
        for event in scripted_run(300):
            app.dash.feed(event)
        app.dash.redraw_now()
        await pilot.pause()
        assert text_of(app, "#health").startswith("health: ok")
        app.dash.feed(replace(step(310), loss=math.nan))  # a non-finite loss is assessed at the next redraw
        app.dash.feed(replace(step(320), loss=math.nan))
        await pilot.pause()
        health = text_of(app, "#health")
        assert health.startswith("health: training loss is nan at iter 310; last finite at iter 300")
        assert app.dash.query_one("#health").has_class("-findings")
        app.dash.redraw_now()
        await pilot.pause()
        assert log_text(app.dash).count("HEALTH: training loss is nan at iter 310") == 1


async def test_health_line_shows_a_val_loss_plateau_from_a_replay():
    from tests.dashboard_script import Eval
    app = DashApp(None)
    async with app.run_test(size=(80, 24)) as pilot:
        for event in scripted_run(1240):
            app.dash.feed(event)
        for i, val in ((1500, 3.41), (1750, 3.40), (2000, 3.41)):  # flat over the last three evals
            app.dash.feed(step(i))
            app.dash.feed(Eval(time=T0 + i * 9.34, iter=i, train_loss=val - 0.04, val_loss=val,
                               best_val_loss=3.38, seconds=20.0))
        app.dash.redraw_now()
        await pilot.pause()
        assert [f.kind for f in app.dash.health] == ["plateau"]
        assert "health: val loss plateau: 3.41, 3.40, 3.41 over the last 3 evals (iters 1,500-2,000" in \
            text_of(app, "#health")
        assert "HEALTH: val loss plateau" in log_text(app.dash)


def test_the_help_lists_each_viewers_own_keys():
    """In the app's own run q stops it; attached, q detaches; a child run (several GPUs) adds d."""
    own, attached, child = HelpModal().lines(), HelpModal(attach=True).lines(), HelpModal(detach=True).lines()
    assert any("q  quit: stop" in line for line in own) and not any(line.strip().startswith("d ") for line in own)
    assert any("q  detach" in line for line in attached)
    assert any(line.strip().startswith("d  detach: the app exits, the run goes on") for line in child)
