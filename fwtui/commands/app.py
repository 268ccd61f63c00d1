"""`fwtui` with no command: open the app (setup screen, then the dashboard of the run it starts); with
`--out RUN --resume`, the dashboard of RUN continuing from its checkpoint, at once.

Bad command-line choices fail here with one line before the screen opens. Signals: SIGHUP (the
terminal went away: SSH dropped, tmux killed) detaches, so the run goes on headless to its end, still
writing RUN/events.jsonl and checkpoints for `fwtui attach`; SIGTERM stops the run at a step boundary
with a checkpoint. Ctrl-C reaches the app as a key (Textual reads the terminal raw). A terminal that
vanishes without a SIGHUP (a closed pty that was not our controlling terminal) is noticed by the first
failed write or a tty check each second, and detaches the same way (fwtui.terminal).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def options_from_args(args: argparse.Namespace):
    """AppOptions from the parsed command line, checked: a bad preset, override or path is one line."""
    from fwtui.app import AppOptions
    from fwtui.widgets.file_picker import data_path_problem
    from trainer.config import apply_overrides, load_preset
    from trainer.errors import ConfigError, DataError

    preset = getattr(args, "preset", None)
    data = getattr(args, "data", None)
    overrides = list(getattr(args, "overrides", None) or [])
    start = bool(getattr(args, "start", False))
    demo = bool(getattr(args, "demo", False))
    resume = bool(getattr(args, "resume", False))
    out = getattr(args, "out", None)
    if resume:
        _check_resumable(out, demo=demo, start=start)
    saved = Path(out) / "config.toml" if resume and out else None
    if saved is not None and saved.is_file() and not preset:
        from trainer.train.resume import read_run_config

        # --set checked against what the run trained with, as the resume will apply it (only what is set)
        apply_overrides(read_run_config(out)[0], overrides, follow=False)
    elif preset:
        config = load_preset(preset)  # ConfigError names the preset and the fix
        apply_overrides(config, overrides)
    elif demo:
        preset = "cpu-tiny"
        apply_overrides(load_preset(preset), overrides)
    elif overrides:
        from trainer.config import RunConfig

        apply_overrides(RunConfig(), overrides)  # key and type errors show before the screen opens
    if data:
        problem = data_path_problem(data)
        if problem is not None:
            raise DataError(f"--data {problem}")
    if start and not (data or demo):
        raise ConfigError("--start needs --data PATH (a parquet file, folder or glob) or --demo")
    if start and not preset:
        raise ConfigError("--start needs --preset NAME (`fwtui presets` lists them)")
    return AppOptions(preset=preset, data=data, out=out, overrides=overrides, start=start,
                      demo=demo and not data, peak_tflops=getattr(args, "peak_tflops", None), resume=resume,
                      tensorboard=getattr(args, "tensorboard", None))


def _check_resumable(out: str | None, *, demo: bool, start: bool) -> None:
    """`--resume` on the app: one line when RUN cannot be continued (no RUN, running, no or damaged checkpoint)."""
    from fwtui.widgets.run_list import checkpoint_problem
    from trainer.errors import ConfigError
    from trainer.runs.listing import is_running

    if not out:
        raise ConfigError("--resume needs --out RUN: the run directory to continue (`fwtui runs` lists them)")
    if demo or start:
        raise ConfigError("--resume continues RUN with its own data and starts at once: drop --demo and --start")
    run_dir = Path(out)
    if not run_dir.is_dir():
        raise ConfigError(f"--resume: {run_dir} is not a run directory (`fwtui runs` lists them)")
    if is_running(run_dir):
        raise ConfigError(f"--resume: {run_dir} is running in another process; watch it with "
                          f"`fwtui attach {run_dir}`")
    problem = checkpoint_problem(run_dir)
    if problem is not None:
        raise ConfigError(f"--resume: {problem}")


def main(args: argparse.Namespace) -> int:
    from fwtui.app import FwtuiApp

    options = options_from_args(args)
    try:
        from fwtui.terminal import HangupSafeDriver
    except ImportError:  # not a POSIX terminal: Textual's own driver, no tty checks
        app = FwtuiApp(options)
    else:
        app = FwtuiApp(options, driver_class=HangupSafeDriver, watch_terminal=True)
    previous = {
        signal.SIGHUP: signal.signal(signal.SIGHUP, lambda *_: app.detach()),
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda *_: _terminate(app)),
    }
    try:
        app.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if app.child is not None:  # several GPUs: the run was a child process (fwtui.child_run)
        return _after_child_run(app)
    session = app.session
    if session is not None:
        # Textual's thread workers run in asyncio's default executor, which app.run() already waited
        # for; join anyway so the process never ends before the trainer's last checkpoint and event.
        session.done.wait()
        if not app.detached and session.run_dir:
            finished = app.dashboard.finished if app.dashboard is not None else None
            print(closing_line(Path(session.run_dir), finished), file=sys.stderr)
        if session.error and not app.detached:
            print(f"fwtui: error: {session.error}", file=sys.stderr)
            return 2
    return int(app.return_code or 0)


def closing_line(run: Path, finished=None) -> str:
    """What the shell shows once the app closed on a run: how to continue a stopped run (in the app, or
    headless), how to train a completed one further, and how to see it again."""
    see = f"`fwtui attach {run}` shows it"
    if finished is not None and finished.reason == "stopped":
        return (f"fwtui: run {run} stopped at iter {finished.iter:,} with a checkpoint; continue it with "
                f"`fwtui --out {run} --resume` (the app) or `fwtui train --out {run} --resume` (headless); {see}")
    if finished is not None:
        return (f"fwtui: run {run} completed at iter {finished.iter:,}; {see}; train it further with "
                f"`fwtui train --out {run} --resume --set max_iters=N`")
    return f"fwtui: run {run}: {see}"


CHILD_EXIT_SECONDS = 60.0
"""After a stop, how long fwtui waits for torchrun's ranks to exit (their Finished is written: the checkpoint is
complete; what is left is process teardown) before it returns the prompt and says the run is still ending."""


def _after_child_run(app) -> int:
    """The app closed on a child run: wait for a stopped run's processes to end, say where the run is."""
    import subprocess

    from fwtui.screens.child_dashboard import goodbye

    child, dashboard = app.child, app.dashboard
    # asked to stop (q, SIGTERM to the app) or over (Finished, Failed): its ranks are ending
    ending = dashboard is not None and (dashboard.stopping or dashboard.run_over) or app.exit_when_over
    if child.proc is not None and ending:
        try:
            child.proc.wait(timeout=CHILD_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            pass  # goodbye() says it is ending, with its pid
    line, code = goodbye(child, dashboard, ending)
    if not app.detached:
        print(line, file=sys.stderr)
    return code


def _terminate(app) -> None:
    """SIGTERM: stop a run at its next step boundary with a checkpoint, then exit; with no run, exit."""
    if app.run_active:
        app.stop_run("SIGTERM", then_exit=True)
    else:
        loop = app._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(app.exit)
