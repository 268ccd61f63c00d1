"""The app with several GPUs: the setup screen's "GPUs" choice, and a run in a child process.

The probe is faked to report 2 CUDA cards (this machine has none). The child run is real: `fwtui train
--nproc-cpu 2` (the app's test hook, launch_flags: torchrun with 2 gloo CPU processes instead of --gpus 2) of
cpu-tiny on the pattern data, driven through Textual's pilot: events arrive on the dashboard from
RUN/events.jsonl, `q` + `y` stops the run through RUN/control/, `d` detaches and leaves it running.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fwtui.app import AppOptions, FwtuiApp
from fwtui.child_run import ChildRun, cpu_process_flags, stderr_reason, train_argv
from fwtui.widgets.plan_panel import plan_rows
from tests.setup_helpers import make_app, settle
from trainer.observe.hardware import GpuSummary

ROOT = Path(__file__).resolve().parents[1]
H100 = GpuSummary("NVIDIA H100 80GB HBM3", 81559 * 1024 * 1024)
WAIT = 120.0
"""Upper bound for any one wait on the child (a hang is a failure, not a measurement)."""
CHILD_RUN = ["max_iters=100000", "log_interval=1", "eval_interval=100000", "eval_iters=2", "batch_size=2",
             "block_size=32", "warmup_iters=2", "gradient_accumulation_steps=2"]
"""cpu-tiny cut down to a few milliseconds a step, training until it is stopped; accumulation 2, one per rank."""


def shown(widget) -> str:
    """The text a Static shows (its content printed by rich, 100 columns), its lines joined by spaces."""
    import io

    from rich.console import Console

    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(widget.content)
    return " ".join(console.export_text().split())


def plan_ready(screen, gpus: int) -> bool:
    plan = screen.query_one("#plan").plan
    return plan is not None and plan.gpus == gpus


async def test_one_gpu_shows_no_choice_and_trains_in_this_process(home: Path) -> None:
    app = make_app(home, gpus=[H100], preset="cpu-tiny")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.gpus is not None and plan_ready(screen, 1))
        assert screen.query_one("#gpus").display is False
        assert screen.gpu_count == 1
        assert "choose_gpus" not in {b.binding.action for b in app.active_bindings.values()}  # off the footer
        assert [label for label, _ in plan_rows(screen.query_one("#plan").plan) if label.startswith("memory")] \
            == ["memory"]


async def test_two_gpus_ask_how_many_and_the_plan_follows(home: Path, tiny_parquet: Path) -> None:
    app = make_app(home, gpus=[H100, H100], preset="cpu-tiny", data=str(tiny_parquet),
                   overrides=["gradient_accumulation_steps=2"])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.gpus is not None and plan_ready(screen, 1))
        choice = screen.query_one("#gpus")
        assert choice.display is True and choice.count == 1 and "of 2" in shown(choice)
        await pilot.press("n")  # the screen's key for the choice
        assert app.focused is choice
        await pilot.press("right")
        assert choice.count == 2 and screen.gpu_count == 2
        await settle(pilot, lambda: plan_ready(screen, 2))
        plan = screen.query_one("#plan").plan
        labels = [label for label, _ in plan_rows(plan)]
        assert "memory/GPU" in labels and "time, 2 GPUs" in labels
        assert plan.memory_breakdown["ddp_buckets"] > 0  # the planner's DDP term, per GPU
        assert "assumed scaling efficiency" in shown(screen.query_one("#plan"))  # the assumption, stated
        await pilot.press("right")  # no more than the visible GPUs
        assert choice.count == 2
        await pilot.press("1")  # a digit sets it while the choice has the focus
        assert choice.count == 1
        await pilot.press("2", "t")
        await settle(pilot, lambda: app.started_with is not None)
    assert app.started_with.gpus == 2 and app.started_with.data == str(tiny_parquet)


async def test_a_count_that_does_not_divide_the_accumulation_is_one_line(home: Path, tiny_parquet: Path) -> None:
    app = make_app(home, gpus=[H100, H100], preset="cpu-tiny", data=str(tiny_parquet))  # accumulation 1
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.gpus is not None)
        await pilot.press("n", "2", "t")
        problem = shown(screen.query_one("#start-problem"))
        assert "2 do not divide gradient_accumulation_steps 1" in problem and problem.count("GPUs:") == 1
        assert app.started_with is None
        await settle(pilot, lambda: plan_ready(screen, 2))
        assert any("do not divide" in w for w in screen.query_one("#plan").plan.warnings)


def test_the_child_is_fwtui_train_with_the_setup_screens_choice(tmp_path: Path) -> None:
    from fwtui.cli import build_parser

    argv = train_argv("cpu-tiny", "shard.parquet", tmp_path / "run", ["batch_size=2", "lr=1e-3"], ["--gpus", "2"],
                      peak_tflops=165.0, tensorboard="tb")
    args = build_parser().parse_args(argv)
    assert (args.command, args.preset, args.data, args.out, args.gpus, args.peak_tflops, args.tensorboard) == \
        ("train", "cpu-tiny", "shard.parquet", str(tmp_path / "run"), "2", 165.0, "tb")
    assert args.overrides == ["batch_size=2", "lr=1e-3"]


def test_the_reason_a_child_died_is_its_one_error_line(tmp_path: Path) -> None:
    log = tmp_path / "train.stderr"
    log.write_text("W1201 warning\nTraceback (most recent call last):\n  ...\nfwtui: error: --gpus 3: only 2 visible\n"
                   "====================\n")
    assert stderr_reason(log) == "fwtui: error: --gpus 3: only 2 visible"
    log.write_text("RuntimeError: address already in use\n------------\n")  # torchrun's framing skipped
    assert stderr_reason(log) == "RuntimeError: address already in use"
    assert stderr_reason(tmp_path / "missing") == ""


@pytest.fixture
def child_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The child finds this checkout's fwtui, one thread per rank (2 ranks share 2 cores)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    return home


def child_app(home: Path, data: Path, run: Path, launch=cpu_process_flags, overrides=CHILD_RUN) -> FwtuiApp:
    return FwtuiApp(AppOptions(preset="cpu-tiny", data=str(data), out=str(run), overrides=list(overrides)),
                    gpu_probe=lambda: [H100, H100], root=home, runs_dir=home / "runs", launch_flags=launch)


async def start_on_two(app: FwtuiApp, pilot) -> None:
    """On the setup screen: 2 GPUs, start; then wait for the child's dashboard."""
    await settle(pilot, lambda: app.screen.gpus is not None)
    await pilot.press("n", "2", "t")
    await settle(pilot, lambda: app.child is not None and app.screen is app.dashboard, WAIT)


async def test_two_processes_in_a_child_watched_and_stopped_by_q(child_env: Path, pattern_data) -> None:
    from trainer.observe.events import CheckpointSaved, Finished, RunStarted
    from trainer.observe.runlog import read_events
    from trainer.train.checkpoint import load_checkpoint

    run = child_env / "run"
    app = child_app(child_env, pattern_data.dir, run)
    async with app.run_test(size=(120, 40)) as pilot:
        await start_on_two(app, pilot)
        dashboard, child = app.dashboard, app.child
        assert child.proc.pid != os.getpid() and os.getsid(child.proc.pid) == child.proc.pid  # its own session
        await settle(pilot, lambda: dashboard.run_over or (dashboard.iteration or 0) >= 3, WAIT)
        assert dashboard.error_message is None, dashboard.error_message
        assert dashboard.run.world_size == 2 and dashboard.loss_points > 0
        await pilot.press("q")
        await pilot.press("y")
        await settle(pilot, lambda: dashboard.run_over, WAIT)
    assert child.proc.wait(timeout=WAIT) == 0, stderr_reason(run / "train.stderr")
    assert dashboard.finished_reason == "stopped"
    events = read_events(run)
    assert [e.world_size for e in events if isinstance(e, RunStarted)] == [2]
    assert [e.reason for e in events if isinstance(e, CheckpointSaved)][-1] == "stop"
    finished = [e for e in events if isinstance(e, Finished)][-1]
    assert load_checkpoint(run)["iter_num"] == finished.iter
    assert (run / "train.stdout").is_file() and not list((run / "control").glob("*.json"))  # the stop was taken


async def test_d_detaches_and_the_run_goes_on(child_env: Path, pattern_data) -> None:
    from fwtui.screens.child_dashboard import goodbye
    from trainer.runs.control_channel import ControlClient

    run = child_env / "run"
    app = child_app(child_env, pattern_data.dir, run)
    async with app.run_test(size=(120, 40)) as pilot:
        await start_on_two(app, pilot)
        dashboard, child = app.dashboard, app.child
        await settle(pilot, lambda: dashboard.run_over or (dashboard.iteration or 0) >= 1, WAIT)
        await pilot.press("d")
    try:
        assert dashboard.detached and child.running  # the app is gone, the run is not
        line, code = goodbye(child, dashboard, ending=False)
        assert code == 0 and "goes on" in line and f"fwtui attach {run}" in line
        steps = len((run / "events.jsonl").read_text().splitlines())
        deadline = time.monotonic() + WAIT
        while len((run / "events.jsonl").read_text().splitlines()) <= steps:
            assert time.monotonic() < deadline and child.running, "the detached run made no progress"
            time.sleep(0.1)
    finally:
        ControlClient(run).stop("test over")  # as `fwtui attach` would
        assert child.proc.wait(timeout=WAIT) == 0


async def test_a_child_that_dies_before_its_first_event_is_one_line(child_env: Path, pattern_data) -> None:
    run = child_env / "run"
    app = child_app(child_env, pattern_data.dir, run, launch=lambda n: ["--nproc-cpu", "0"])
    async with app.run_test(size=(120, 40)) as pilot:
        await start_on_two(app, pilot)
        dashboard = app.dashboard
        await settle(pilot, lambda: dashboard.error_message is not None, WAIT)
        message = dashboard.error_message
        await pilot.press("q")  # the run is over: q quits at once
    assert "before its first event" in message and "fwtui: error: --nproc-cpu 0" in message, message
    assert "status 2" in message and "Traceback" not in message and "\n" not in message
    assert isinstance(app.child, ChildRun) and not app.child.running


def test_a_child_that_ends_mid_run_is_one_line_that_says_how_to_continue(tmp_path: Path) -> None:
    """A child gone without a Finished or Failed in the log (a rank killed: torchrun ends the rest)."""
    import subprocess
    import sys

    from trainer.observe.events import Failed, Warning
    from trainer.observe.runlog import EventLogWriter

    run = tmp_path / "run"
    child = ChildRun(run, [])
    run.mkdir()
    EventLogWriter(run)(Warning(message="an earlier attempt"))  # in RUN before the start: not this run's
    child.follower.poll()
    (run / "train.stderr").write_text("[rank1]: Traceback ...\nChildFailedError: rank 1 exited with -9\n=====\n")
    EventLogWriter(run)(Warning(message="training"))
    child.proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    child.proc.wait()
    events = child.poll()
    assert [type(e) for e in events] == [Warning, Failed] and not child.running
    line = events[-1].message
    assert "ended (status 1) before the run finished: ChildFailedError: rank 1 exited with -9" in line
    assert f"fwtui --out {run} --resume" in line and "\n" not in line
    assert child.poll() == []  # said once


def test_q_before_rank_0_takes_commands_stops_the_child_by_sigterm(tmp_path: Path) -> None:
    """While the ranks start, nobody reads RUN/control/: the stop goes to the child as SIGTERM (torchrun passes
    it to every rank, which stop at their first boundary), not to a channel that would refuse it."""
    import subprocess
    import sys

    from fwtui.child_run import ChildControls

    run = tmp_path / "run"
    run.mkdir()
    ready, stopped = tmp_path / "ready", tmp_path / "stopped"
    script = ("import pathlib, signal, sys, time\n"
              f"signal.signal(signal.SIGTERM, lambda *_: (pathlib.Path({str(stopped)!r}).touch(), sys.exit(0)))\n"
              f"pathlib.Path({str(ready)!r}).touch()\n"
              "time.sleep(60)\n")
    child = ChildRun(run, [])
    child.proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + WAIT
        while not ready.exists():
            assert time.monotonic() < deadline and child.running, "the stand-in child never started"
            time.sleep(0.05)
        errors: list[str] = []
        ChildControls(child, on_error=errors.append).stop("quit")
        assert child.proc.wait(timeout=WAIT) == 0 and stopped.exists() and errors == []
    finally:
        if child.proc.poll() is None:
            child.proc.kill()


def test_fwtui_waits_for_a_stopped_child_then_says_where_the_run_is(tmp_path: Path, capsys) -> None:
    import subprocess
    import sys
    from types import SimpleNamespace

    from fwtui.commands.app import _after_child_run

    child = ChildRun(tmp_path / "run", [])
    child.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    app = SimpleNamespace(child=child, dashboard=SimpleNamespace(stopping=True, run_over=False, error_message=None),
                          exit_when_over=False, detached=False)
    assert _after_child_run(app) == 0 and child.proc.returncode == 0  # waited for the ranks to end
    assert f"see it again with `fwtui attach {child.run_dir}`" in capsys.readouterr().err
    from trainer.observe.events import Finished

    child.argv = ["train", "--preset", "cpu-tiny", "--gpus", "2", "--out", str(child.run_dir)]
    app.dashboard.finished = Finished(iter=16, reason="stopped", seconds=1.0)  # q on the run: how to continue it
    assert _after_child_run(app) == 0
    assert (f"stopped at iter 16 with a checkpoint; continue it with `fwtui train --out {child.run_dir} --resume "
            "--gpus 2`") in capsys.readouterr().err
    app.dashboard.finished = None
    app.dashboard.error_message = "the training process exited (status 2) before its first event: bad"
    assert _after_child_run(app) == 2
    assert capsys.readouterr().err.strip() == f"fwtui: error: {app.dashboard.error_message}"
