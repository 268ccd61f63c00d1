"""Thread-safe requests to a running Trainer: stop, pause, resume, evaluate, checkpoint, sample, HellaSwag.

Any thread (the app's UI thread, a signal handler, the control-channel watcher of `fwtui attach`) calls
the request methods; they only set flags under a lock and return at once. The trainer calls `take()` at
each step boundary and acts on what it gets, so a request never interrupts a step half-way.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

TRAINING, PREPARING, EVALUATING, SAMPLING, SAVING = (
    "training", "preparing the data", "evaluating", "sampling", "writing the checkpoint")
"""What the run is doing (Controls.activity), for the words of a second stop signal."""


@dataclass(frozen=True, slots=True)
class SampleRequest:
    prompt: str = "\n"
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = 200


@dataclass(slots=True)
class Requests:
    """What was asked since the last step boundary."""

    evaluate: bool = False
    checkpoint: bool = False
    hellaswag: bool = False
    """Score HellaSwag now (the `h` key), whatever hellaswag_interval says."""
    samples: list[SampleRequest] = field(default_factory=list)


class Controls:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = Requests()
        self._stop = threading.Event()
        self._running = threading.Event()  # set = not paused
        self._running.set()
        self.stop_reason = ""
        self.activity = TRAINING
        """Set by the trainer's thread around long work that a stop cuts short (`doing`); read by a signal
        handler, so a second Ctrl-C is told what is really under way. One str assignment: atomic."""

    # --- called from any thread ---------------------------------------------------------------------
    def stop(self, reason: str = "stop requested") -> None:
        """Stop at the next step boundary, with a checkpoint. Also wakes a paused trainer."""
        if not self._stop.is_set():
            self.stop_reason = reason
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def toggle_pause(self) -> bool:
        """Pause if running, resume if paused; returns True when now paused."""
        if self._running.is_set():
            self.pause()
            return True
        self.resume()
        return False

    def request_eval(self) -> None:
        with self._lock:
            self._pending.evaluate = True

    def request_checkpoint(self) -> None:
        with self._lock:
            self._pending.checkpoint = True

    def request_hellaswag(self) -> None:
        with self._lock:
            self._pending.hellaswag = True

    def request_sample(self, prompt: str = "\n", max_new_tokens: int = 200, temperature: float = 0.8,
                       top_k: int | None = 200) -> None:
        with self._lock:
            self._pending.samples.append(SampleRequest(prompt, max_new_tokens, temperature, top_k))

    # --- called by the trainer ------------------------------------------------------------------------
    @contextmanager
    def doing(self, what: str) -> Iterator[None]:
        """Mark `what` (PREPARING, EVALUATING, SAMPLING, SAVING) as under way while inside."""
        before, self.activity = self.activity, what
        try:
            yield
        finally:
            self.activity = before

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def take(self) -> Requests:
        """Everything requested since the last call, clearing it."""
        with self._lock:
            pending, self._pending = self._pending, Requests()
        return pending

    def wait_while_paused(self, timeout: float = 0.2) -> bool:
        """Block up to `timeout` seconds while paused; True if still paused (call again after handling
        requests, so a sample or checkpoint asked for during a pause is still served)."""
        return not self._running.wait(timeout)
