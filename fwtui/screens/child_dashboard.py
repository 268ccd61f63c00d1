"""The dashboard of a run the app started as a child process (several GPUs: fwtui.child_run).

The same DashboardScreen as in-process runs, fed the way `fwtui attach` is: RUN/events.jsonl read four times a
second (ChildRun.poll), keys through the control channel (ChildControls). `q` asks, then stops the run at its
next step boundary with a checkpoint, and the app exits once the run has finished; `d` detaches: the app
exits and the run goes on (its own session: the terminal closing does not reach it), `fwtui attach RUN`
shows it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.binding import Binding

from fwtui.child_run import ChildControls, ChildRun, LaunchFlags, gpu_flags, train_argv
from fwtui.screens.dashboard import DashboardScreen
from fwtui.screens.help import HelpModal
from trainer.observe.events import Failed, Finished

POLL_SECONDS = 0.25
"""How often RUN/events.jsonl is read for new lines (as `fwtui attach`): one stat and read, and feels live."""


class ChildDashboard(DashboardScreen):
    BINDINGS = [Binding("d", "detach", "detach")]

    def __init__(self, child: ChildRun, *, title: str, poll_seconds: float = POLL_SECONDS) -> None:
        controls = ChildControls(child)
        # The run is other processes': the UI's CPU time costs it nothing (in_process=False, as attach).
        super().__init__(controls, title=title, in_process=False)
        controls.on_error = lambda message: self.notify(message, severity="error", markup=False)
        self.child = child
        self.poll_seconds = poll_seconds
        self.detached = False
        """True once `d` left the run going on without the app."""
        self.child_ended = False
        """True once the run is over and torchrun has exited (a new run may start: `b`)."""

    def on_mount(self) -> None:  # Textual runs DashboardScreen.on_mount too (handlers of every class)
        self.set_interval(self.poll_seconds, self.poll_child)

    def poll_child(self) -> int:
        """Feed the events new in RUN/events.jsonl (and a Failed if the child died without one)."""
        events = self.child.poll()
        with self.app.batch_update():
            for event in events:
                self.controls.observe(event)  # the client learns paused/running from the log
                self.feed(event)
        if any(isinstance(e, (Finished, Failed)) for e in events) and getattr(self.app, "exit_when_over", False):
            self.app.exit()  # SIGTERM to the app asked to exit once the run stopped
        if self.run_over and not self.child_ended and not self.child.running:
            self.child_ended = True
            self.refresh_bindings()  # its processes have exited: `b` (back to setup) joins the footer
        return len(events)

    def action_help(self) -> None:
        self.app.push_screen(HelpModal(detach=True, over=self.run_over, back=self.can_go_back))

    def action_detach(self) -> None:
        if not self.child.running:
            self.notify("the run is not running: nothing to detach from (q quits)")
            return
        self.detached = True
        self.app.exit()


def open_child_run(app: Any, choice: Any, *, preset: str, out: str | None, launch: LaunchFlags,
                   peak_tflops: float | None, tensorboard: str | None = None) -> None:
    """Start `fwtui train ... <launch(choice.gpus)>` for the setup screen's choice and push its dashboard.

    The run directory is decided on a worker thread (trainer.runs.launch.default_run_dir: importing it imports
    torch, a second or more the screen must not freeze for); the child is then started from the UI thread.
    Sets app.child and app.dashboard."""
    def decide_run_dir() -> None:
        try:
            if out:
                run_dir = Path(out)
            else:
                from trainer.runs.launch import default_run_dir

                run_dir = default_run_dir(choice.preset)
            app.call_from_thread(launch_in, run_dir)
        except Exception as err:  # noqa: BLE001 - shown on the setup screen, never a traceback
            app.call_from_thread(app.notify, f"cannot start the run: {type(err).__name__}: {err}",
                                 severity="error", markup=False)

    def launch_in(run_dir: Path) -> None:
        argv = train_argv(preset, choice.data, run_dir, list(choice.overrides), launch(choice.gpus), peak_tflops,
                          tensorboard)
        child = ChildRun(run_dir, argv)
        app.child = child
        unit = "GPUs" if launch is gpu_flags else "processes"
        app.dashboard = ChildDashboard(child, title=f"{Path(choice.data).name} · {choice.preset.name} · "
                                                    f"{choice.gpus} {unit}")
        app.push_screen(app.dashboard)
        child.start()

    app.notify(f"starting {choice.gpus} processes through torchrun…", timeout=3)
    app.run_worker(decide_run_dir, name="child-run", group="child-run", thread=True, exit_on_error=False)


def goodbye(child: ChildRun, dashboard: Any, ending: bool) -> tuple[str, int]:
    """What `fwtui` prints when the app closes on a child run, and its exit status; `ending`: the run was
    asked to stop (q, or SIGTERM to the app) or is over, so its processes are ending, not going on."""
    run = child.run_dir
    if dashboard is not None and dashboard.error_message is not None:
        return f"fwtui: error: {dashboard.error_message}", 2
    if child.running:
        pid = child.proc.pid if child.proc is not None else "?"
        if ending:
            return f"fwtui: run {run} is ending (torchrun, pid {pid}); `fwtui attach {run}` shows it", 0
        return (f"fwtui: run {run} goes on in the background (torchrun, pid {pid}); watch it with "
                f"`fwtui attach {run}`, stop it with `kill -TERM {pid}` (a checkpoint at a boundary)"), 0
    finished = getattr(dashboard, "finished", None)
    if finished is not None and finished.reason == "stopped":
        argv = child.argv
        flags = next((f" {flag} {argv[i + 1]}" for i, flag in enumerate(argv[:-1])
                      if flag in ("--gpus", "--nproc-cpu")), "")  # the same processes again
        return (f"fwtui: run {run} stopped at iter {finished.iter:,} with a checkpoint; continue it with "
                f"`fwtui train --out {run} --resume{flags}`; `fwtui attach {run}` shows it"), 0
    return f"fwtui: run {run} — see it again with `fwtui attach {run}`", 0
