"""What the setup-screen tests share: the app with starts recorded instead of run, a private home, waiting."""

from __future__ import annotations

import time
from pathlib import Path

from fwtui.app import AppOptions, FwtuiApp
from fwtui.screens.setup import SetupScreen


class RecordingApp(FwtuiApp):
    """The real app, except that a start is written down instead of training."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.started_with = None

    def on_setup_screen_start_requested(self, event: SetupScreen.StartRequested) -> None:
        event.prevent_default()  # Textual would call FwtuiApp's handler too
        self.started_with = event.choice


def make_app(home: Path, gpus=(), **options) -> RecordingApp:
    return RecordingApp(AppOptions(**options), gpu_probe=lambda: list(gpus), root=home,
                        runs_dir=home / "runs")


async def settle(pilot, condition, limit: float = 30.0, shown=None) -> None:
    """Wait until condition() holds; on giving up, the failure carries shown() (what the screen says)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, ("the screen never reached the expected state"
                                             + (f"; it shows: {shown()}" if shown else ""))
        await pilot.pause(0.05)


async def click_on(pilot, selector: str, limit: float = 30.0) -> None:
    """Click the widget SELECTOR names, again until the click lands on it: a click aims at where the widget
    was last laid out, so one made just after the screen changed (new lines pushing a button down) can land
    on another widget (Pilot.click says whether it hit its target)."""
    deadline = time.monotonic() + limit
    while not await pilot.click(selector):
        assert time.monotonic() < deadline, f"a click never landed on {selector}"
        await pilot.pause(0.05)


def visible_names(screen) -> list[str]:
    return [p.name for p in screen.query_one("#presets").visible]


TINY_RUN = ["max_iters=40", "log_interval=1", "eval_interval=1000", "eval_iters=2", "batch_size=2",
            "block_size=32", "warmup_iters=2"]
"""cpu-tiny cut down to a few seconds of real training on the pattern data (tests/conftest.py)."""


def stopped_run(run_dir: Path, data_dir: Path, stop_after: int = 3) -> Path:
    """A real cpu-tiny run stopped by its controls after the Step of iteration `stop_after`: it saves a
    checkpoint at the next iteration (stop_after + 1) and ends with Finished("stopped")."""
    from trainer.train.controls import Controls
    from trainer.observe.events import Step
    from trainer.runs.launch import RunRequest, run_training

    controls = Controls()

    def sink(event) -> None:
        if isinstance(event, Step) and event.iter >= stop_after:
            controls.stop("test")

    run_training(RunRequest(preset="cpu-tiny", data=str(data_dir), out=run_dir, overrides=TINY_RUN), sink,
                 controls)
    return run_dir
