"""Messages the engine side posts to the app (from its worker thread, through `post_message`).

`post_message` is thread-safe and returns at once, so the trainer never waits on the UI. The events
themselves wait in the session's fwtui.mailbox.EventMailbox (every one of them: the loss chart needs every
Step); EventsWaiting only wakes the UI to collect them.
"""

from __future__ import annotations

from textual.message import Message


class EventsWaiting(Message):
    """Engine events (trainer.observe.events) wait in the mailbox: collect them now, on the UI thread."""


class EngineDone(Message):
    """The engine worker returned (finished, stopped or failed); `run_dir` is None when it failed early."""

    def __init__(self, run_dir: str | None, error: str | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.error = error
