"""Snapshots of the dashboard fed a fixed event script, at 120x40 (the design's size) and 80x24 (SSH).

Deterministic: every event has a fixed `time`, the finish time is shown in UTC, charts are drawn before the
picture (redraw_now) and the only Input has its cursor blink turned off.
Update after an intended change with `pytest tests/test_dashboard_snapshots.py --snapshot-update`, then look
at the SVGs in tests/__snapshots__/.
"""

from __future__ import annotations

from datetime import timezone

from textual.app import App
from textual.widgets import Input

from fwtui.screens.dashboard import DashboardScreen
from tests.dashboard_script import T0, Failed, Sample, prepare_events, run_started, scripted_run, step


class ScriptedDashboard(App):
    def __init__(self, events: list, controls: object | None = object()) -> None:
        super().__init__()
        self.events = events
        self.dash = DashboardScreen(controls, title="fineweb-000", tz=timezone.utc)

    def on_mount(self) -> None:
        self.push_screen(self.dash)


def feed_all(*, keys: tuple[str, ...] = ()):
    async def run_before(pilot) -> None:
        app = pilot.app
        await pilot.pause()
        for event in app.events:
            app.dash.feed(event)
        await pilot.pause()
        app.dash.redraw_now()
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
            await pilot.pause()
    return run_before


def test_dashboard_wide(snap_compare):
    """120x40: header, loss and MFU charts side by side, memory, time, latest sample, event log."""
    assert snap_compare(ScriptedDashboard(scripted_run(1240)), terminal_size=(120, 40), run_before=feed_all())


def test_dashboard_narrow(snap_compare):
    """80x24: the panels stack in one scrolling column; the throughput chart folds away."""
    assert snap_compare(ScriptedDashboard(scripted_run(1240)), terminal_size=(80, 24), run_before=feed_all())


def test_dashboard_tokenizing(snap_compare):
    """Before RunStarted: the tokenization progress panel."""
    assert snap_compare(ScriptedDashboard(prepare_events()), terminal_size=(80, 24), run_before=feed_all())


def test_dashboard_failed_on_cpu_with_unknown_peak(snap_compare):
    """A CPU run (RSS memory, MFU unknown and why) that failed: the error panel on top."""
    events = [run_started(peak_flops=None, device="cpu"), *[step(i, mfu=None, cpu=True) for i in range(0, 200, 10)],
              Failed(time=T0 + 3000, message="checkpoint write failed: disk full at runs/fineweb-000 "
                                              "(free some space, then `fwtui run --resume`)", iter=190)]
    assert snap_compare(ScriptedDashboard(events), terminal_size=(80, 24), run_before=feed_all())


def test_sample_modal_with_generated_text(snap_compare):
    """`s`, a prompt, Enter, then the Sample event: the modal shows the continuation."""

    async def run_before(pilot) -> None:
        await feed_all()(pilot)
        app = pilot.app
        await pilot.press("s")
        await pilot.pause()
        app.screen.query_one(Input).cursor_blink = False
        await pilot.press(*"The city", "enter")
        app.dash.feed(Sample(time=T0 + 12_000, iter=1240, prompt="The city",
                             text=" was built on seven hills, and its people kept the old roads open.", seconds=0.7))
        await pilot.pause()

    class Recorder:
        def request_sample(self, *args) -> None:
            pass

    app = ScriptedDashboard(scripted_run(1240), controls=Recorder())
    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)
