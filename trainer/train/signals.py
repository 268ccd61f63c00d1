"""Headless signal handling: SIGINT, SIGTERM and SIGHUP ask the trainer to stop at a step boundary.

The handlers only call `controls.stop(...)` (a flag under a lock): the loop checkpoints and exits at the
next step boundary. Long work between boundaries looks at that flag at each small unit and is cut there
(an evaluation at its next batch, a sample at its next token, a prepare at its next row group), so a
stop lands within a supervisor's grace (systemd, docker and Kubernetes send SIGKILL 10 to 90 s after
SIGTERM). A second Ctrl-C says what is under way (Controls.activity) and changes nothing (the save is
atomic anyway); a third restores the default handler and raises KeyboardInterrupt, for a run that truly
hangs.

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

from trainer.train.controls import EVALUATING, PREPARING, SAMPLING, SAVING, Controls

ALREADY_STOPPING = {
    SAVING: "the checkpoint is being written",
    EVALUATING: "the evaluation under way stops at its next batch, then the checkpoint is written",
    SAMPLING: "the sample under way stops at its next token, then the checkpoint is written",
    PREPARING: "the prepare stops at its next row group and keeps what is done (no checkpoint: training has "
               "not started)",
}
"""The second signal's words for each Controls.activity; any other: the step under way finishes first."""

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
                doing = ALREADY_STOPPING.get(controls.activity) if controls.activity != SAVING else None
                notify(f"{name}: stopping; {doing}" if doing
                       else f"{name}: stopping at the next step with a checkpoint")
            else:
                doing = ALREADY_STOPPING.get(controls.activity,
                                             "the step under way finishes, then the checkpoint is written")
                notify(f"{name}: already stopping; {doing} (Ctrl-C once more aborts without waiting)")

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
