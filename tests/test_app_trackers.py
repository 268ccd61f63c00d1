"""`fwtui --tensorboard DIR`: the app's own (in-process) run feeds TensorBoard, as `fwtui train` does.

The command line goes through the real parser and options_from_args, the app starts cpu-tiny at once (`--start`)
on a small prepared dataset, and torch's SummaryWriter is the recording fake of tests/test_trackers.py (the
tensorboard package is an optional extra, absent from a fresh clone's dev install; the sink's own writing is
tests/test_trackers.py's). Without the package the app says so in one notification and the run goes on.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fwtui.app import FwtuiApp
from fwtui.cli import build_parser
from fwtui.commands.app import options_from_args
from tests.test_trackers import FakeSummaryWriter, fake_tensorboard
from trainer.observe import trackers

WAIT_SECONDS = 120.0
"""Upper bound for any one wait (a hang is a failure, not a measurement); a healthy run takes seconds."""
SHORT_RUN = ["max_iters=4", "log_interval=1", "eval_interval=2", "eval_iters=1", "batch_size=2", "block_size=32",
             "warmup_iters=1", "gradient_accumulation_steps=1"]
"""cpu-tiny cut to 4 steps of a few milliseconds, a Step each and an evaluation at iterations 2 and 4."""


@pytest.fixture
def workdir(home: Path) -> Path:
    """conftest's `home`: a private cwd (runs/ and the data cache land there), state, cache and config dirs."""
    return home


def app_for(workdir: Path, data: Path, *extra: str) -> FwtuiApp:
    argv = ["--preset", "cpu-tiny", "--data", str(data), "--out", str(workdir / "run"), "--start", *extra]
    for override in SHORT_RUN:
        argv += ["--set", override]
    return FwtuiApp(options_from_args(build_parser().parse_args(argv)), gpu_probe=lambda: [], root=workdir)


async def run_to_its_end(app: FwtuiApp) -> list[tuple[str, str]]:
    """Start the app, wait for its run to finish, quit; (severity, message) of every notification it showed."""
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + WAIT_SECONDS
        while app.session is None or not app.session.done.is_set():
            assert time.monotonic() < deadline, "the app's run never finished"
            await pilot.pause(0.1)
        await pilot.pause()
        shown = [(n.severity, n.message) for n in app._notifications]
        assert app.session.error is None, app.session.error
        await pilot.press("q")
    return shown


async def test_the_apps_run_feeds_tensorboard(workdir: Path, pattern_data, monkeypatch) -> None:
    fake_tensorboard(monkeypatch)
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec",  # the package "installed": the fake writer is used
                        lambda name, *rest: object() if name == "tensorboard" else real(name, *rest))
    board = workdir / "tb"
    app = app_for(workdir, pattern_data.dir, "--tensorboard", str(board))
    assert app.options.tensorboard == str(board)
    shown = await run_to_its_end(app)
    assert ("information", f"TensorBoard: writing to {board} (tensorboard --logdir {board})") in shown
    [writer] = FakeSummaryWriter.made
    assert writer.log_dir == str(board) and writer.closed  # closed before the run counts as done
    from trainer.observe.events import Eval, Step
    from trainer.observe.runlog import read_events

    events = read_events(workdir / "run")
    scalars = {(tag, step): value for tag, value, step in writer.scalars}
    steps = [e for e in events if isinstance(e, Step)]
    assert [(s.iter, scalars[("train/loss", s.iter)]) for s in steps] == [(s.iter, s.loss) for s in steps]
    assert sorted(step for tag, step in scalars if tag == "val/loss") == [e.iter for e in events
                                                                         if isinstance(e, Eval)]
    assert any(tag == "train/lr" for tag, _ in scalars)


async def test_without_the_tensorboard_package_the_app_says_so_and_trains_on(workdir: Path, pattern_data,
                                                                             monkeypatch) -> None:
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec",
                        lambda name, *rest: None if name == "tensorboard" else real(name, *rest))
    board = workdir / "tb"
    app = app_for(workdir, pattern_data.dir, "--tensorboard", str(board))
    shown = await run_to_its_end(app)
    assert ("warning", "TensorBoard not written: the tensorboard package is not installed "
                       "(pip install tensorboard)") in shown
    assert not board.exists()
    assert app.dashboard.finished_reason == "completed"
