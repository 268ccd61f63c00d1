"""Noticing that the terminal went away, whether or not a SIGHUP says so.

A terminal can vanish without a hang-up signal reaching us: a pty that is not our controlling terminal
(a script's pty, some multiplexers) is closed, and from then on every write raises EIO and every read
returns end-of-file. Textual's writer thread dies on the first EIO; the next frames fill its queue and
the UI thread blocks on it for good, while engine events pile up in the loop unseen (memory grows with
every Step). So the app's output goes through `GuardedOutput`, which turns the first failed write into
a call to `on_lost` (the app detaches, the run goes on headless), and `terminal_alive` lets a timer ask
the tty itself.
"""

from __future__ import annotations

import errno
import os
import sys
import termios
from typing import Callable, TextIO

from textual.drivers.linux_driver import LinuxDriver

LOST_ERRNOS = frozenset({errno.EIO, errno.EPIPE, errno.ENXIO, errno.EBADF})


class GuardedOutput:
    """A text file whose write/flush never raise: the first OSError calls `on_lost` and drops the rest."""

    def __init__(self, file: TextIO, on_lost: Callable[[], None]) -> None:
        self._file = file
        self._on_lost = on_lost
        self.lost = False

    def _fail(self) -> None:
        if not self.lost:
            self.lost = True
            self._on_lost()

    def write(self, text: str) -> int:
        if self.lost:
            return len(text)
        try:
            return self._file.write(text)
        except OSError:
            self._fail()
            return len(text)

    def flush(self) -> None:
        if self.lost:
            return
        try:
            self._file.flush()
        except OSError:
            self._fail()

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return self._file.isatty()


class HangupSafeDriver(LinuxDriver):
    """Textual's Linux driver writing through GuardedOutput; the app's `detach()` hears of a loss."""

    def __init__(self, app, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self._file = GuardedOutput(sys.__stderr__, on_lost=lambda: app.detach())


def terminal_alive(fd: int) -> bool:
    """False once the tty behind `fd` was hung up (its ioctls then fail with EIO); True otherwise,
    including when `fd` is not a tty at all (nothing to lose)."""
    try:
        termios.tcgetattr(fd)
    except termios.error as err:
        return not (err.args and err.args[0] in LOST_ERRNOS)
    except (OSError, ValueError):
        return False
    return True


def point_terminal_at_devnull() -> None:
    """Make fds 0, 1 and 2 /dev/null, so late writes by any thread succeed instead of raising EIO."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        try:
            os.dup2(null, fd)
        except OSError:
            pass
    os.close(null)
