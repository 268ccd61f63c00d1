"""The Textual app: the setup screen, then the dashboard of the run it starts or continues.

`FwtuiApp(options)` is the one factory the CLI, the tests and the benchmark all use. The app holds no
training logic: it turns the setup screen's choice into a run (fwtui.session), feeds the engine's events
to the dashboard, and looks after the run when the terminal goes away (`hangup`).
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from textual.app import App

from fwtui.mailbox import COLLECT_SECONDS
from fwtui.messages import EngineDone, EventsWaiting
from fwtui.recent import remember
from fwtui.screens.setup import SetupScreen
from fwtui.session import EngineSession, RunArgs
from trainer.config import RunConfig, all_presets, load_preset

DETACHED_GRACE_SECONDS = 30.0
"""After a hang-up, how long the process may linger once the run has ended before it is ended for sure."""
TERMINAL_CHECK_SECONDS = 1.0
"""How often the app asks its tty whether it is still there (one ioctl), when watching it."""


@dataclass
class AppOptions:
    """The command line's choices (all optional: the setup screen asks for what is missing)."""

    preset: str | None = None
    data: str | None = None
    out: str | None = None
    overrides: list[str] = field(default_factory=list)
    start: bool = False
    demo: bool = False
    peak_tflops: float | None = None
    resume: bool = False
    """`fwtui --out RUN --resume`: open the dashboard on RUN continuing from its checkpoint, no setup screen."""
    tensorboard: str | None = None
    """`fwtui --tensorboard DIR`: the app's run also writes its scalars for TensorBoard to DIR."""


def default_gpu_probe() -> list[Any]:
    from trainer.observe.hardware import query_gpus

    return query_gpus()


class FwtuiApp(App):
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute: subclasses elsewhere find it too
    TITLE = "fwtui"

    def __init__(self, options: AppOptions | None = None, *, gpu_probe: Callable[[], list[Any]] | None = None,
                 root: Path | None = None, presets: list[RunConfig] | None = None,
                 runs_dir: Path | None = None, driver_class: type | None = None,
                 watch_terminal: bool = False, launch_flags: Callable[[int], list[str]] | None = None) -> None:
        """`driver_class` and `watch_terminal` are for a real terminal (the CLI): a driver that survives
        the terminal vanishing (fwtui.terminal) and a check of the tty every second. `launch_flags`: how a
        run on N > 1 GPUs asks `fwtui train` for its processes (fwtui.child_run; tests: N CPU processes)."""
        super().__init__(driver_class=driver_class)
        self.watch_terminal = watch_terminal
        self.options = options or AppOptions()
        self.gpu_probe = gpu_probe or default_gpu_probe
        self.root = root or Path.cwd()
        self._preset_from_path: RunConfig | None = None
        """The preset --preset loaded from a .toml / nanoGPT .py path: a child run is given that path."""
        self.presets = presets if presets is not None else self._load_presets()
        self.runs_dir = runs_dir
        self.session: EngineSession | None = None
        self.child: Any = None
        """A run on several GPUs: fwtui.child_run.ChildRun, the `fwtui train --gpus N` child it runs in."""
        self.launch_flags = launch_flags
        self.dashboard: Any = None
        self.detached = False
        """True once the terminal went away: the run goes on headless and the app is gone."""
        self.exit_when_over = False
        self._collector: Any = None  # the timer collecting the session's waiting events
        self.first_frame: Callable[[], None] | None = None
        """A hook the launch benchmark sets: called once the setup screen has drawn its first frame."""

    def _load_presets(self) -> list[RunConfig]:
        presets = all_presets()
        wanted = self.options.preset
        if wanted and wanted not in {p.name for p in presets}:
            presets.insert(0, load_preset(wanted))  # a .toml / nanoGPT .py path from --preset
            self._preset_from_path = presets[0]
        return presets

    def on_mount(self) -> None:
        if self.watch_terminal:
            self.set_interval(TERMINAL_CHECK_SECONDS, self._check_terminal)
        if self.options.resume and self.options.out:
            options = self.options
            self._open_run(self._resume_args(Path(options.out), options.overrides, options.preset, options.data))
            if self.first_frame is not None:
                self.dashboard.call_after_refresh(self.first_frame)
            return
        setup = self._setup_screen(start=self.options.start, demo=self.options.demo)
        self.push_screen(setup)
        if self.first_frame is not None:
            setup.call_after_refresh(self.first_frame)

    def _setup_screen(self, *, start: bool = False, demo: bool = False, preset: str | None = None) -> SetupScreen:
        wanted = preset or self.options.preset
        preset_name = None
        if wanted:
            preset_name = wanted if wanted in {p.name for p in self.presets} else self.presets[0].name
        return SetupScreen(self.presets, root=self.root, gpu_probe=self.gpu_probe, preset=preset_name,
                           data=self.options.data, overrides=self.options.overrides, start=start, demo=demo,
                           peak_tflops=self.options.peak_tflops, runs_dir=self.runs_dir)

    # --- the run ---------------------------------------------------------------------------------
    def on_setup_screen_start_requested(self, event: SetupScreen.StartRequested) -> None:
        choice = event.choice
        remember(choice.data)
        if choice.gpus > 1:  # DDP: torchrun's processes, a child of the app (fwtui.screens.child_dashboard)
            from fwtui.child_run import gpu_flags
            from fwtui.screens.child_dashboard import open_child_run

            preset = self.options.preset if choice.preset is self._preset_from_path else None
            open_child_run(self, choice, preset=preset or choice.preset.name, out=self.options.out,
                           launch=self.launch_flags or gpu_flags, peak_tflops=self.options.peak_tflops,
                           tensorboard=self.options.tensorboard)
            return
        out = Path(self.options.out) if self.options.out else None
        self._open_run(RunArgs(preset=choice.preset, data=choice.data, out=out, overrides=choice.overrides,
                               peak_tflops=self.options.peak_tflops),
                       title=f"{Path(choice.data).name} · {choice.preset.name}")

    def on_setup_screen_resume_requested(self, event: SetupScreen.ResumeRequested) -> None:
        self._open_run(self._resume_args(event.run_dir))  # the run's own config and data, nothing changed

    def _resume_args(self, run_dir: Path, overrides: list[str] | None = None, preset: str | None = None,
                     data: str | None = None) -> RunArgs:
        """What `fwtui train --out RUN --resume [--set ...]` asks of the engine: the run's own config.toml
        and data (None), changed only by what the user set on the command line."""
        return RunArgs(preset=preset, data=data, out=run_dir, overrides=list(overrides or []),
                       peak_tflops=self.options.peak_tflops, resume=True)

    def _open_run(self, args: RunArgs, title: str | None = None) -> None:
        """Push the dashboard and start the engine worker on `args`."""
        from fwtui.screens.dashboard import DashboardScreen  # plots load only when a run starts
        from trainer.train.controls import Controls

        controls = Controls()
        if title is None:  # a resumed run is known by its directory
            title = f"{args.out.resolve().name if args.out else 'run'} · continued"
        self.dashboard = DashboardScreen(controls, title=title, in_process=True)
        if args.resume and args.out is not None:
            self._replay_history(Path(args.out))  # before the engine appends to the same log
        self.push_screen(self.dashboard)
        args.tensorboard = args.tensorboard or self.options.tensorboard  # every in-process run, started or resumed
        self.session = EngineSession(self, args, controls)
        self.session.start()
        if self._collector is None:  # Steps wait in the mailbox for this timer (or the next wake-up)
            self._collector = self.set_interval(COLLECT_SECONDS, self.collect_events)

    def _replay_history(self, run_dir: Path) -> None:
        """A continued run's dashboard starts with the run's whole history (loss, val points, samples, events)
        from RUN/events.jsonl, as `fwtui attach`, compare and report show it."""
        from trainer.errors import FwtuiError
        from trainer.observe.runlog import read_events

        try:
            events = read_events(run_dir)
        except (OSError, FwtuiError) as err:
            self.notify(f"the run's earlier history is not shown: {err}", severity="warning", markup=False)
            return
        for event in events:
            self.dashboard.feed(event)

    def on_events_waiting(self, message: EventsWaiting) -> None:
        self.collect_events()

    def collect_events(self) -> None:
        """Feed the dashboard every event waiting in the session's mailbox (UI thread)."""
        if self.session is None:
            return
        for event in self.session.mailbox.take():
            if self.dashboard is not None:
                self.dashboard.feed(event)

    def on_engine_done(self, message: EngineDone) -> None:
        """The worker returned. The dashboard showed Finished or Failed and decides about exit, except
        after SIGTERM, which ends the app once the run has stopped."""
        self.collect_events()  # anything still waiting comes before the end
        if self.exit_when_over:
            self.exit()
        elif self.dashboard is not None:
            self.dashboard.refresh_bindings()  # `b` (back to setup) joins the footer now that the worker ended

    def can_go_back(self) -> bool:
        """True when `b` may leave the dashboard for the setup screen: the run's worker (or a child run's
        processes) has ended, so a new run never trains beside it (fwtui.screens.back_to_setup)."""
        return self.dashboard is not None and not self.run_active and not self.exit_when_over

    def back_to_setup(self) -> None:
        """`b` on the dashboard of a run that has ended: the setup screen under it again, with its preset,
        overrides and data as they were, and the run's end in one line (a new one after `--out RUN --resume`,
        which opened no setup screen)."""
        from fwtui.screens.back_to_setup import ending_line, run_preset

        if not self.can_go_back():
            return
        line, failed = ending_line(self.dashboard)
        preset = run_preset(self.dashboard, self.options.out)  # for a new setup screen: the run's preset
        self.session = self.child = self.dashboard = None  # nothing of that run is the app's any more
        setups = [screen for screen in self.screen_stack if isinstance(screen, SetupScreen)]
        if setups:
            while self.screen is not setups[-1]:
                self.pop_screen()
            setup = setups[-1]
        else:
            setup = self._setup_screen(preset=preset)
            self.switch_screen(setup)
        setup.came_back(line, failed)

    @property
    def run_active(self) -> bool:
        return (self.session is not None and self.session.running) or (self.child is not None and self.child.running)

    def stop_run(self, reason: str, *, then_exit: bool = False) -> None:
        """Ask the trainer to stop at its next step boundary, with a checkpoint; with `then_exit`, the
        app exits once the run has stopped (SIGTERM)."""
        self.exit_when_over = self.exit_when_over or then_exit
        if self.session is not None:
            self.session.controls.stop(reason)
        elif self.child is not None and self.dashboard is not None:
            self.dashboard.controls.stop(reason)  # the control channel (or SIGTERM while the ranks start)

    def on_unmount(self) -> None:
        # The app is closing for a reason other than a hang-up (ctrl+q, an error): stop the run at a step
        # boundary with a checkpoint rather than leave it training with no way to see or stop it.
        if self.session is not None and self.session.running and not self.detached:
            self.stop_run("quit")  # a child run (several GPUs) is not lost with the app: it goes on

    # --- the terminal went away ------------------------------------------------------------------
    def _check_terminal(self) -> None:
        from fwtui.terminal import terminal_alive

        if not terminal_alive(sys.__stdin__.fileno()):
            self.detach()

    def detach(self) -> None:
        """Close the app and leave the run training headless, to its end or until stopped: on SIGHUP, a
        failed write to the terminal (fwtui.terminal), or a tty that reports a hang-up.

        Safe from a signal handler or any thread: it only sets state, points the terminal's file
        descriptors at /dev/null (writes to a dead tty raise EIO), starts a watchdog, and schedules
        the exit on the app's loop. The run keeps writing RUN/events.jsonl and checkpoints; on_unmount
        leaves it alone because `detached` is set.
        """
        if self.detached:
            return
        self.detached = True
        from fwtui.terminal import point_terminal_at_devnull

        point_terminal_at_devnull()
        if self.session is not None:
            self.session.mailbox.close()  # the run's events still go to RUN/events.jsonl; none to a UI
            threading.Thread(target=_exit_after_run, args=(self.session,), name="fwtui-detached-watchdog",
                             daemon=True).start()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.exit)


def _exit_after_run(session: EngineSession) -> None:
    """After a hang-up: once the run has ended, make sure the process ends too, even if the UI side
    is stuck on the dead terminal (the run's files are complete when `done` is set)."""
    session.done.wait()
    threading.Event().wait(DETACHED_GRACE_SECONDS)
    os._exit(0)
