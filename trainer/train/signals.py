"""Headless signal handling: SIGINT, SIGTERM and SIGHUP ask the trainer to stop at a step boundary.

The handlers only call `controls.stop(...)` (a flag under a lock): the loop checkpoints and exits at the
next step boundary. A second Ctrl-C while it saves changes nothing (the save is atomic anyway); a third
restores the default handler and raises KeyboardInterrupt, for a run that truly hangs.

Under torchrun every rank installs these handlers, and torchrun passes a signal it gets to each rank's
process group (the ranks run in sessions of their own, so a terminal's Ctrl-C reaches torchrun alone).
The ranks hear it at slightly different moments; which boundary stops is agreed by the boundary's
collective (trainer.train.distributed.SharedControls: a stop on any rank stops all at that boundary),
where rank 0 writes the checkpoint. torchrun waits TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds (30 by default)
for that, then kills.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from trainer.train.controls import Controls

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def stop_on_signals(controls: Controls, notify: Callable[[str], None] | None = None) -> Iterator[None]:
    """While inside, the stop signals stop the run gracefully; the previous handlers come back after.

    `notify(message)` is called (from the handler: keep it to a print) so the user knows it was heard.
    Outside the main thread nothing is installed (Python only delivers signals there).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = {"n": 0}

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        count["n"] += 1
        if count["n"] >= 3 and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        controls.stop(f"{name} received")
        if notify is not None:
            if count["n"] == 1:
                notify(f"{name}: stopping at the next step with a checkpoint")
            else:
                notify(f"{name}: already stopping; the checkpoint is being written "
                       "(Ctrl-C once more aborts without waiting)")

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
