"""Opening fwtui's own files in a folder another user may have written to first (issue 23, point 6).

On a shared GPU server a run or prepare folder can sit under a world-writable parent, or be made loose
before fwtui tightens it; another account can then plant `events.jsonl -> /home/you/.bashrc` and let fwtui
append to, truncate or overwrite the victim's own file. So the files fwtui writes in such a folder
(`train.bin.partial`, `resume.json.tmp`, `meta.json.tmp-PID`, `.prepare.lock`, `config.toml.tmp`,
`events.jsonl`, `.lock`) are opened here:

- never through a symlink (O_NOFOLLOW on the last component), and a file that is not a plain file of
  ours with one link (another owner, or a hard link to someone else's file) is refused unread;
- a temp file is made anew: whatever holds its name is unlinked (a symlink goes, not its target) and the
  file is created with O_CREAT | O_EXCL;
- a folder owned by another user is refused outright: anything in it could point anywhere.

Each refusal is one line naming the path and the fix (a folder only you can write).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from trainer.errors import FwtuiError

FIX = "remove it, or use a folder only you can write (--out)"


class ForeignFileError(FwtuiError):
    """A file or folder fwtui would write is not one of its own: a symlink, or someone else's."""


def refusal(info: os.stat_result) -> str:
    """Why a file with this fstat is not one fwtui may write, in words after its path; '' when it may."""
    if not stat.S_ISREG(info.st_mode):
        return "is not a plain file"
    if info.st_uid != os.geteuid():
        return f"belongs to user id {info.st_uid}, not you"
    if info.st_nlink > 1:
        return f"has {info.st_nlink} hard links (one may be someone else's file)"
    return ""


def open_own(path: str | Path, flags: int, mode: int = 0o600) -> int:
    """os.open(path, flags) that never follows a symlink and refuses a file not ours (ForeignFileError)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ForeignFileError(f"{path} is a symbolic link, which fwtui never writes through "
                                   f"(someone may have planted it); {FIX}") from None
        raise
    why = refusal(os.fstat(fd))
    if why:
        os.close(fd)
        raise ForeignFileError(f"{path} {why}, so fwtui will not write it; {FIX}")
    return fd


def fresh_file(path: str | Path, flags: int = os.O_WRONLY, mode: int = 0o600) -> int:
    """A new, empty file at `path` (a temp or a file rewritten from zero): what held the name before (a
    leftover of ours, or a planted symlink) is unlinked, then the file is created O_EXCL | O_NOFOLLOW."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:  # made again between the unlink and the open: someone else writes here
        raise ForeignFileError(f"{path} appeared again while fwtui was creating it: another process or user "
                               f"writes this folder; {FIX}") from None


def check_own_folder(folder: str | Path) -> None:
    """ForeignFileError when `folder` (or a symlink naming it) belongs to another user; nothing if missing."""
    folder = Path(folder)
    for follow in (False, True):
        try:
            info = os.stat(folder, follow_symlinks=follow)
        except FileNotFoundError:
            return
        if info.st_uid != os.geteuid():
            what = "is a symbolic link that" if stat.S_ISLNK(info.st_mode) else "is a folder that"
            raise ForeignFileError(f"{folder} {what} belongs to user id {info.st_uid}, not you: files in it "
                                   "could point anywhere; pass an --out of your own")


__all__ = ["ForeignFileError", "check_own_folder", "fresh_file", "open_own", "refusal"]
