"""Whether another process holds an flock on a file: the liveness probe behind `fwtui runs` and attach.

The kernel drops an flock when its holder exits however it exits (SIGKILL included), so a held lock means
a live process; a stale file never reads as one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def is_locked(path: str | Path, *, follow_symlinks: bool = True) -> bool | None:
    """True while some process holds an flock on `path`, False when none does, None when it cannot be opened."""
    flags = os.O_RDONLY | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock if we got it
    return False
