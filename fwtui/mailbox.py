"""Engine events on their way to the UI thread, handed over in batches.

The trainer's sink puts each event here (a deque append: it never waits on the UI) and, when the UI should
look now, calls `notify` (the app's post_message of an EventsWaiting message). Every post wakes the UI's
event loop, and each wake-up costs the run a GIL hand-over and some Textual bookkeeping: at a Step every
iteration on a small model that was 22 wake-ups a second, over 1% of a core on a busy 2-core machine. So
Steps (and Progress, the same kind of news) do not each wake the UI: the first one after a quiet spell does,
the rest ride along with the next wake-up or wait for the app's collection timer (COLLECT_SECONDS). Any other event (an eval, a sample, a
pause, the end) wakes it at once, taking the Steps before it along, in order.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from trainer.observe.events import Event, Progress, Step

COLLECT_SECONDS = 0.5
"""The app collects waiting Steps at least this often, and a Step wakes the UI at most this often: a Step
is shown at most half a second late."""


class EventMailbox:
    """Events from the engine thread (`put`) for the UI thread (`take`). No lock: deque appends and pops
    are atomic, and a race on the flags costs at most one extra, empty, wake-up."""

    def __init__(self, notify: Callable[[], None], *, step_seconds: float = COLLECT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._notify, self._step_seconds, self._clock = notify, step_seconds, clock
        self._events: deque[Event] = deque()
        self._closed = False
        self._notified = False  # a wake-up is on its way and has not been taken yet
        self._last_notice = -float("inf")

    def put(self, event: Event) -> None:
        """On the engine thread: keep the event; wake the UI when it should look now."""
        if self._closed:
            return
        self._events.append(event)
        if self._notified:
            return  # the wake-up on its way takes this one too
        now = self._clock()
        if isinstance(event, (Step, Progress)) and now - self._last_notice < self._step_seconds:
            return  # the collection timer, or the next wake-up, takes it
        self._notified, self._last_notice = True, now
        self._notify()

    def close(self) -> None:
        """No UI will take events any more (the terminal went away): drop them from now on."""
        self._closed = True
        self._events.clear()

    def take(self) -> list[Event]:
        """On the UI thread: every waiting event, oldest first."""
        self._notified = False  # first: an event put while draining wakes the UI again, never waits unseen
        taken = []
        while True:
            try:
                taken.append(self._events.popleft())
            except IndexError:
                return taken

    def __len__(self) -> int:
        return len(self._events)
