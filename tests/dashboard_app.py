"""What the dashboard tests share: controls that record requests, an app that shows one DashboardScreen."""

from __future__ import annotations

from datetime import timezone

from textual.app import App
from textual.widgets import Static

from fwtui.screens.dashboard import DashboardScreen
from fwtui.widgets.panels import EventLog


class FakeControls:
    """Records every request the dashboard makes, like trainer.train.controls.Controls would receive them."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.paused = False

    def stop(self, reason: str = "") -> None:
        self.calls.append(("stop", reason))

    def toggle_pause(self) -> bool:
        self.paused = not self.paused
        self.calls.append(("toggle_pause",))
        return self.paused

    def request_eval(self) -> None:
        self.calls.append(("eval",))

    def request_checkpoint(self) -> None:
        self.calls.append(("checkpoint",))

    def request_sample(self, prompt, max_new_tokens, temperature, top_k) -> None:
        self.calls.append(("sample", prompt, max_new_tokens, temperature, top_k))


class DashApp(App):
    def __init__(self, controls=None, *, attach: bool = False, **screen_kw) -> None:
        super().__init__()
        self.dash = DashboardScreen(controls, title="fineweb-000", attach=attach, tz=timezone.utc, **screen_kw)

    def on_mount(self) -> None:
        self.push_screen(self.dash)


def text_of(app: App, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def log_text(dash: DashboardScreen) -> str:
    return "\n".join(dash.query_one(EventLog).lines_text)
