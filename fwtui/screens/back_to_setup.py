"""`b` on the app's dashboard once its run has ended (failed, finished or stopped): back to the setup screen,
with the preset, overrides and data it had, and the run's end in one line, to change a key and press `t` again.

Two mixins, one for each side: BackToSetup (DashboardScreen) offers `b` only when the run is over and its
engine worker (or a child run's processes) has ended, so two runs never train at once; only FwtuiApp, which
has `back_to_setup`, offers it at all (never `attach`, `view` or `serve`: they have no setup screen).
ComingBack (SetupScreen) shows the line in the start-problem line until the user changes something, rescans
the runs to continue (a stopped run is offered there now; a failed one without checkpoint never is,
fwtui.widgets.run_list) and lets `t` start again.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from textual.binding import Binding
from textual.widgets import Static

BACK_BINDING = Binding("b", "back_to_setup", "back to setup")
BACK_HELP = ("b", "back to setup: the same preset, overrides and data, to change a key and start again (t)")


def ending_line(dashboard: Any) -> tuple[str, bool]:
    """("the last run failed: MESSAGE", True), or how it finished, False: what the setup screen shows."""
    run = f" ({Path(dashboard.run.run_dir).name})" if dashboard.run is not None else ""
    if dashboard.failed is not None:
        message = (dashboard.failed.message or "no message").strip().splitlines() or ["no message"]
        return f"the last run{run} failed: {message[0]}", True
    finished = dashboard.finished
    if finished is not None and finished.reason == "stopped":
        return (f"the last run{run} stopped at iter {finished.iter:,} with a checkpoint: r continues it, "
                "t starts a new one", False)
    if finished is not None:
        return f"the last run{run} {finished.reason} at iter {finished.iter:,}", False
    return f"the last run{run} ended", False


def run_preset(dashboard: Any, run_dir: str | None) -> str | None:
    """The preset name the run trained with: its RunStarted's config, else RUN/config.toml's `name`."""
    if dashboard.run is not None:
        return dashboard.run.config.get("name")
    if run_dir is None:
        return None
    try:
        return tomllib.loads((Path(run_dir) / "config.toml").read_text(encoding="utf-8")).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):  # unreadable: the list's own choice
        return None


class BackToSetup:
    """The dashboard's side: `b` in the footer and the help only once the run is over and its worker ended."""

    run_over: bool
    app: Any

    @property
    def can_go_back(self) -> bool:
        may = getattr(self.app, "can_go_back", None)  # FwtuiApp's: the worker or child has ended
        return bool(self.run_over and may is not None and may())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back_to_setup":
            return self.can_go_back  # False: off the footer, and the key does nothing
        return super().check_action(action, parameters)  # type: ignore[misc]

    def action_back_to_setup(self) -> None:
        if self.can_go_back:
            self.app.back_to_setup()


class ComingBack:
    """The setup screen's side: the last run's end in one line until something changes; `t` starts again."""

    last_run_line: str | None = None
    """"the last run failed: ...", shown in #start-problem until the user changes a key, the preset or the data."""
    _last_run_failed = False
    _choice_at_line: tuple[str | None, tuple[str, ...]] = (None, ())
    """The preset and overrides when the line was shown: it stays until they differ."""

    def came_back(self, line: str, failed: bool) -> None:
        self.started = False  # t starts again
        self.start_at_once = False  # `--start`: not a second time (a `d` would start at once)
        self.last_run_line, self._last_run_failed = line, failed
        if self.is_mounted:  # type: ignore[attr-defined]
            self._show_last_run()
        else:  # a new screen (after `--out RUN --resume`): its cursor stays put, not moved (and the line gone)
            self.preset_settled = True  # by the GPU probe

    def on_mount(self) -> None:  # after SetupScreen.on_mount (Textual calls each class's handler)
        if self.last_run_line is not None:
            self._show_last_run()

    def _show_last_run(self) -> None:
        line = self.query_one("#start-problem", Static)  # type: ignore[attr-defined]
        line.update(self.last_run_line or "")
        line.display = True
        line.set_class(not self._last_run_failed, "-note")  # a finished or stopped run is no problem
        self._choice_at_line = self._choice_now()
        self.list_runs()  # type: ignore[attr-defined]
        self.refresh_plan()  # type: ignore[attr-defined]

    def _choice_now(self) -> tuple[str | None, tuple[str, ...]]:
        base = self.base  # type: ignore[attr-defined]
        return base.name if base else None, tuple(self.query_one("#overrides").all_overrides())  # type: ignore

    def forget_last_run(self) -> None:
        """The preset or an override changed: the last run's line goes. Not for the change messages a new
        screen's prefilled fields send once mounted: they bring the values the line was shown with."""
        if self.last_run_line is not None and self._choice_now() != self._choice_at_line:
            self._show_start_problem(None)  # type: ignore[attr-defined]
