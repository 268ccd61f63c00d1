"""The real flow, driven by keys through Textual's pilot: cpu-tiny on a small generated parquet.

Choose the preset with `/` + Enter, type the data path, set max_iters, start with `t`, watch the
dashboard's iteration counter and loss chart fill, ask for a sample with `s`, then `q` + `y`: the run
stops with a checkpoint and the app exits. The engine runs for real (torch on CPU), in the app's worker.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fwtui.app import AppOptions, FwtuiApp
from fwtui.screens import dashboard as dashboard_module
from tests.conftest import synthetic_texts, write_fineweb_parquet

WAIT_SECONDS = 90.0
"""Upper bound for any one wait below; a healthy run needs a few seconds (a bound, not a timing)."""


async def wait_for(pilot, condition, what: str, limit: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        await pilot.pause(0.1)


@pytest.fixture
def workdir(home: Path) -> Path:
    """conftest's `home`: a private cwd (runs/ and the data cache land there), state, cache and config dirs."""
    return home


async def test_choose_start_watch_sample_quit(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `s` asks for 200 tokens; 24 show the same flow in a fraction of the time on a CPU.
    monkeypatch.setitem(dashboard_module.SAMPLE_SETTINGS, "max_new_tokens", 24)
    data = write_fineweb_parquet(workdir / "shard.parquet", synthetic_texts(200), row_group_size=50)
    run_dir = workdir / "run"
    # Keys without a field come as command-line --set values: 200 documents need 5% held out; a Step
    # every iteration and 2-batch evaluations keep the test short on a busy 2-core machine.
    extra = ["val_fraction=0.05", "log_interval=1", "eval_iters=2", "eval_interval=100"]
    app = FwtuiApp(AppOptions(out=str(run_dir), overrides=extra), gpu_probe=lambda: [], root=workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        setup = app.screen
        # The preset by keys: "/" opens the filter, type, Enter back to the list, Enter chooses.
        await pilot.press("slash")
        await pilot.press(*"cpu-tiny")
        await pilot.press("enter")
        await pilot.press("enter")
        assert setup.base.name == "cpu-tiny"
        assert app.focused is not None and app.focused.id == "data-path", app.focused
        # The file: type its path in the input, Enter.
        await pilot.press(*str(data))
        await pilot.press("enter")
        assert setup.data == str(data), setup.data
        # Overrides as typed: more iterations than the test waits for; a small batch and context.
        for key, value in (("max_iters", "400"), ("batch_size", "2"), ("block_size", "64")):
            setup.query_one(f"#set-{key}").focus()
            await pilot.press(*value)
        await pilot.pause()
        assert setup.query_one("#overrides").problem is None, setup.query_one("#overrides").problem
        setup.query_one("#presets").focus_list()
        await pilot.press("t")
        await wait_for(pilot, lambda: app.dashboard is not None and app.screen is app.dashboard, "the dashboard")
        dashboard = app.dashboard
        await wait_for(pilot, lambda: dashboard.error_message is not None or (dashboard.iteration or 0) >= 2,
                       "the iteration counter to advance")
        assert dashboard.error_message is None, dashboard.error_message
        first = dashboard.iteration
        await wait_for(pilot, lambda: (dashboard.iteration or 0) > first, "a later iteration")
        assert dashboard.loss_points > 0

        # `s`: a prompt, Enter; training pauses at the next step boundary and the text arrives in the modal.
        await pilot.press("s")
        await pilot.press(*"The")
        await pilot.press("enter")
        modal = app.screen
        await wait_for(pilot, lambda: modal.generated_text != "", "the sample text")
        assert modal.generated_text.strip(), repr(modal.generated_text)
        await pilot.press("escape")

        # `q`, then yes: stop at a step boundary with a checkpoint, and the app exits on Finished.
        await pilot.press("q")
        await pilot.press("y")
        await wait_for(pilot, lambda: dashboard.finished_reason is not None, "Finished")
    assert app.session is not None and app.session.done.wait(30)
    assert dashboard.finished_reason == "stopped", dashboard.finished_reason
    assert (run_dir / "ckpt.pt").is_file()
    assert (run_dir / "events.jsonl").is_file()
    # The checkpoint is the one saved at the stop: the iteration the run finished at, loadable safely.
    from trainer.train.checkpoint import load_checkpoint
    from trainer.observe.events import CheckpointSaved, Finished
    from trainer.observe.runlog import read_events

    events = read_events(run_dir)
    finished = [e for e in events if isinstance(e, Finished)][-1]
    assert [e.reason for e in events if isinstance(e, CheckpointSaved)][-1] == "stop"
    assert load_checkpoint(run_dir)["iter_num"] == finished.iter


async def test_out_run_resume_opens_the_dashboard_continuing_the_run(workdir: Path, pattern_data) -> None:
    """`fwtui --out RUN --resume`: no setup screen; the dashboard of RUN, continuing from its checkpoint."""
    from fwtui.cli import build_parser
    from fwtui.commands.app import options_from_args
    from fwtui.screens.setup import SetupScreen
    from tests.setup_helpers import stopped_run
    from trainer.train.checkpoint import load_checkpoint
    from trainer.observe.events import RunStarted
    from trainer.observe.runlog import read_events

    run_dir = stopped_run(workdir / "run", pattern_data.dir)
    resumed_at = load_checkpoint(run_dir)["iter_num"]
    options = options_from_args(build_parser().parse_args(["--out", str(run_dir), "--resume"]))
    app = FwtuiApp(options, gpu_probe=lambda: [], root=workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.screen is app.dashboard, "the dashboard")
        assert not any(isinstance(screen, SetupScreen) for screen in app.screen_stack)
        dashboard = app.dashboard
        await wait_for(pilot, lambda: dashboard.error_message is not None or (
            dashboard.run is not None and dashboard.run.start_iter > 0 and dashboard.last_step is not None),
            "the first Step of the resumed run")
        assert dashboard.error_message is None, dashboard.error_message
        assert dashboard.run.start_iter == resumed_at, dashboard.run.start_iter
        # the whole history, as attach shows it (issue 20 §2.4): the first run's points, then the new ones
        iters = [it for it, _ in dashboard.train_loss.points]
        assert iters[0] == 0 and resumed_at in iters and iters == sorted(iters), iters[:8]
        assert dashboard.val_loss.points and dashboard.val_loss.points[0][0] < resumed_at
        log = "\n".join(dashboard.query_one("#log").lines_text)
        assert "run started from scratch" in log and f"run started from iter {resumed_at}" in log, log
        await pilot.press("q")
        await pilot.press("y")
        await wait_for(pilot, lambda: dashboard.run_over, "the end of the run")
    assert app.session is not None and app.session.done.wait(30)
    starts = [e for e in read_events(run_dir) if isinstance(e, RunStarted)]
    assert [s.start_iter for s in starts] == [0, resumed_at]  # one log, appended by the resumed run


def test_out_run_resume_refuses_in_one_line_what_cannot_continue(workdir: Path, pattern_data) -> None:
    from fwtui.cli import build_parser
    from fwtui.commands.app import options_from_args
    from tests.setup_helpers import stopped_run
    from trainer.errors import ConfigError
    from trainer.runs.listing import RunLock

    def options(*argv: str):
        return options_from_args(build_parser().parse_args(list(argv)))

    with pytest.raises(ConfigError, match="--resume needs --out RUN"):
        options("--resume")
    with pytest.raises(ConfigError, match="is not a run directory"):
        options("--out", str(workdir / "nowhere"), "--resume")
    run_dir = stopped_run(workdir / "run", pattern_data.dir)
    with RunLock(run_dir), pytest.raises(ConfigError, match=f"running in another process.*fwtui attach {run_dir}"):
        options("--out", str(run_dir), "--resume")
    with pytest.raises(ConfigError, match="unknown config key|max_itres"):
        options("--out", str(run_dir), "--resume", "--set", "max_itres=5")
    assert options("--out", str(run_dir), "--resume").resume
    (run_dir / "ckpt.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ConfigError, match="damaged checkpoint: ckpt.pt"):
        options("--out", str(run_dir), "--resume")
