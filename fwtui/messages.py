"""Messages the engine side posts to the app (from its worker thread, through `post_message`).

`post_message` is thread-safe and returns at once, so the trainer never waits on the UI. Each engine
event travels alone: no `can_replace` coalescing, because the loss chart needs every Step.
"""

from __future__ import annotations

from textual.message import Message

from trainer.events import Event


class EngineEvent(Message):
    """One event from the engine (trainer.events), to be fed to the dashboard on the UI thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class EngineDone(Message):
    """The engine worker returned (finished, stopped or failed); `run_dir` is None when it failed early."""

    def __init__(self, run_dir: str | None, error: str | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.error = error
