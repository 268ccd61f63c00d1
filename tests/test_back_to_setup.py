"""Issue 20 §2.2, the last part: after a run started from the setup screen fails (or finishes, or is stopped),
`b` on the app's dashboard goes back to the setup screen with the same choices and the failure in one line;
`t` starts a new run. Real runs (cpu-tiny on CPU, in the app's worker), Textual's pilot at 80×24 and 120×40.

The run fails as a user's would, late: block_size 4096 is a valid key, but the 5% held out of 200 documents
holds fewer tokens, which the engine finds only once the data is tokenized (a run directory, no checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fwtui.app import AppOptions, FwtuiApp
from fwtui.screens.help import HelpModal
from fwtui.screens.setup import SetupScreen
from tests.conftest import synthetic_texts, write_fineweb_parquet
from tests.test_app_flow import wait_for
from tests.test_app_gpus import child_app, child_env, start_on_two  # noqa: F401 - child_env: a fixture

SIZES = [(80, 24), (120, 40)]
SETS = ["val_fraction=0.05", "log_interval=1", "eval_iters=2", "eval_interval=1000", "batch_size=2",
        "max_iters=400", "block_size=4096"]


def footer(app) -> list[str]:
    return [key.description for key in app.screen.query("FooterKey")]


@pytest.mark.parametrize("size", SIZES)
async def test_b_goes_back_to_setup_after_a_failed_run_and_t_starts_again(home: Path, size) -> None:
    data = write_fineweb_parquet(home / "shard.parquet", synthetic_texts(200))
    app = FwtuiApp(AppOptions(preset="cpu-tiny", data=str(data), overrides=SETS), gpu_probe=lambda: [], root=home)
    async with app.run_test(size=size) as pilot:
        setup = app.screen
        await wait_for(pilot, lambda: setup.data == str(data), "the data path")
        setup.query_one("#presets").focus_list()
        await pilot.press("t")
        await wait_for(pilot, lambda: app.dashboard is not None and app.screen is app.dashboard, "the dashboard")
        failed = app.dashboard
        await wait_for(pilot, lambda: failed.error_message is not None, "the failure")
        assert "val split" in failed.error_message and "block_size" in failed.error_message, failed.error_message
        await wait_for(pilot, lambda: app.session.done.is_set() and "back to setup" in footer(app), "`b` offered")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpModal) and any(key == "b" for key, _ in app.screen.rows())
        await pilot.press("escape")

        await pilot.press("b")  # the same setup screen, its choices as they were, the failure in one line
        assert app.screen is setup and isinstance(setup, SetupScreen) and app.dashboard is None
        assert setup.base.name == "cpu-tiny" and setup.data == str(data)
        assert setup.query_one("#set-block_size").value == "4096"
        line = setup.query_one("#start-problem")
        assert line.display and str(line.render()).startswith("the last run failed: ") and "val split" in str(
            line.render()) and not line.has_class("-note")
        # the failed run left a directory without a checkpoint: never offered as a run to continue
        (failed_dir,) = (home / "runs").iterdir()
        assert not (failed_dir / "ckpt.pt").exists()
        await pilot.pause(0.3)
        assert failed_dir.resolve() not in [choice.path.resolve() for choice in setup.query_one("#runs").choices]

        block = setup.query_one("#set-block_size")  # a key changed: the line goes
        block.focus()
        await pilot.press(*["backspace"] * 4, "6", "4")
        await pilot.pause()
        assert not line.display
        setup.query_one("#presets").focus_list()
        await pilot.press("t")
        await wait_for(pilot, lambda: app.dashboard not in (None, failed) and app.screen is app.dashboard,
                       "the new run's dashboard")
        running = app.dashboard
        await wait_for(pilot, lambda: running.error_message is not None or (running.iteration or 0) >= 1,
                       "the new run's first steps")
        assert running.error_message is None, running.error_message
        assert "back to setup" not in footer(app)
        await pilot.press("b")  # while it trains: nothing
        await pilot.pause()
        assert app.screen is running and app.session.running

        app.session.controls.stop("test")  # stopped elsewhere (as `fwtui attach` would): the app goes on
        await wait_for(pilot, lambda: running.finished_reason == "stopped", "the stop")
        await wait_for(pilot, lambda: "back to setup" in footer(app), "`b` offered after the stop")
        await pilot.press("b")
        assert app.screen is setup
        assert "stopped at iter" in str(line.render()) and line.has_class("-note")
        assert setup.query_one("#set-block_size").value == "64"
        runs = setup.query_one("#runs")
        await wait_for(pilot, lambda: any(choice.continuable for choice in runs.choices), "the stopped run listed")


async def test_b_after_a_refused_resume_opens_a_setup_screen(home: Path, pattern_data) -> None:
    """`fwtui --out RUN --resume` opened no setup screen: `b` makes one (the failure on it), `t` starts from it."""
    from tests.setup_helpers import stopped_run

    run_dir = stopped_run(home / "run", pattern_data.dir)  # stopped at iter 4: max_iters=2 is refused
    app = FwtuiApp(AppOptions(out=str(run_dir), resume=True, overrides=["max_iters=2"]), gpu_probe=lambda: [],
                   root=home, runs_dir=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.error_message is not None,
                       "the refusal")
        await wait_for(pilot, lambda: "back to setup" in footer(app), "`b` offered")
        await pilot.press("b")
        setup = app.screen
        assert isinstance(setup, SetupScreen) and app.dashboard is None and app.session is None
        await wait_for(pilot, lambda: setup.query_one("#start-problem").display, "the failure's line")
        assert "the last run (run) failed: " in str(setup.query_one("#start-problem").render())
        assert "max_iters is 2" in str(setup.query_one("#start-problem").render())
        assert setup.base.name == "cpu-tiny"  # the run's preset (from its config.toml), not the list's first
        runs = setup.query_one("#runs")  # the stopped run is still there to continue, as it was
        await wait_for(pilot, lambda: [c.path.name for c in runs.choices if c.continuable] == ["run"],
                       "the run to continue")


@pytest.mark.parametrize("size", SIZES)
async def test_attach_and_view_of_an_ended_run_have_no_b(tmp_path: Path, size) -> None:
    """`b` is the app's: a viewer (`attach`, `view`, `serve`'s tabs) has no setup screen to go back to."""
    from fwtui.commands.attach import build_attach_app
    from tests.test_runs import make_run
    from trainer.observe.events import Failed, Finished

    for end in (Finished(iter=4, reason="completed", seconds=5.0), Failed(message="boom", iter=3)):
        app = build_attach_app(make_run(tmp_path, type(end).__name__, end, iters=5))
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: app.dashboard.run_over, "the replayed end")
            assert "back to setup" not in footer(app)
            await pilot.press("b")
            await pilot.pause()
            assert app.screen is app.dashboard
            await pilot.press("question_mark")
            assert not any(key == "b" for key, _ in app.screen.rows())


async def test_b_after_a_child_run_failed_once_its_processes_ended(child_env: Path, pattern_data) -> None:
    """A run on several GPUs (a child, here 0 CPU processes: it dies before its first event): `b` once torchrun
    has exited, then the setup screen with its "GPUs" choice as it was."""
    app = child_app(child_env, pattern_data.dir, child_env / "run", launch=lambda n: ["--nproc-cpu", "0"])
    async with app.run_test(size=(120, 40)) as pilot:
        setup = app.screen
        await start_on_two(app, pilot)
        dashboard, child = app.dashboard, app.child
        await wait_for(pilot, lambda: dashboard.error_message is not None, "the child's failure")
        await wait_for(pilot, lambda: "back to setup" in footer(app), "`b` offered")
        assert not child.running
        await pilot.press("b")
        assert app.screen is setup and app.child is None and setup.gpu_count == 2
        assert "failed: " in str(setup.query_one("#start-problem").render())
