"""The one exception family the faces catch and print as a single line.

Every error a user can cause (a bad preset, a missing column, no tokenizer file) is raised as a
subclass of `FwtuiError` whose message says what was wrong, with the value, and what to do instead.
The CLI prints it without a traceback (unless --debug); the app shows it in an error panel.
"""

import errno


class FwtuiError(Exception):
    """A user-facing error: `str(err)` is one line naming the problem and the fix."""


class ConfigError(FwtuiError, ValueError):
    """A preset, config file or override is invalid."""


class TokenizerError(FwtuiError):
    """The GPT-2 tokenizer ranks could not be loaded."""


class DataError(FwtuiError):
    """An input file or prepared dataset is missing, unreadable or malformed."""


class CheckpointError(FwtuiError):
    """A checkpoint is missing, incomplete, unsafe or does not match the run."""


class PathError(FwtuiError, OSError):
    """A folder or file fwtui must create, write or read refused (permission, read-only disk, a file in the
    way, a name too long): an OSError underneath, told as the path, the cause and the fix."""


# errno -> (what it means, what to do). The fix names the setting that moves the path: --out for a run or
# prepared folder, FWTUI_CACHE_DIR for the data cache (fwtui prepare without --out, train --data PARQUET).
_OS_CAUSES = {
    errno.EACCES: ("permission denied", "choose a folder you can write (e.g. under your home) or fix its permissions"),
    errno.EPERM: ("operation not permitted", "choose a folder you can write (e.g. under your home)"),
    errno.EROFS: ("the file system is read-only", "choose a folder on a writable disk"),
    errno.EEXIST: ("a file is in the way where a folder should be", "move that file, or choose another path"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose a path whose parents are folders"),
    errno.EISDIR: ("it is a folder where a file is expected", "choose another path"),
    errno.ENAMETOOLONG: ("the name is too long (file systems allow 255 bytes a name)", "choose a shorter name"),
    errno.ENOENT: ("a folder on the way does not exist or cannot be created here", "choose an existing, writable place"),
    errno.ENOSPC: ("no space left on device", "free some space, or choose a folder on a larger disk"),
    errno.EDQUOT: ("the disk quota is used up", "free some space, or choose a folder on another disk"),
}


def describe_os_error(err: OSError, cache_dir: "str | None" = None) -> str:
    """One line for an OSError from the file system: the path, the cause in words, the fix, and the setting
    that chooses another place: FWTUI_CACHE_DIR for a path inside `cache_dir` (the data cache), else --out."""
    path = str(err.filename) if err.filename is not None else "a file"
    cause, fix = _OS_CAUSES.get(err.errno, (err.strerror or type(err).__name__, "choose another path"))
    in_cache = cache_dir is not None and (path + "/").startswith(str(cache_dir).rstrip("/") + "/")
    setting = "FWTUI_CACHE_DIR chooses the data cache" if in_cache else "--out chooses where fwtui writes"
    return f"{path}: {cause}; {fix} ({setting})"


def as_user_error(err: BaseException, cache_dir: "str | None" = None) -> BaseException:
    """A file-system OSError as a PathError (one line for the faces); anything else as it is."""
    if isinstance(err, OSError) and not isinstance(err, FwtuiError) and err.filename is not None:
        return PathError(describe_os_error(err, cache_dir))
    return err


class StoppedWhilePreparing(FwtuiError):
    """A stop (Ctrl-C, SIGTERM) came while the data was being prepared: the prepare stopped at a row group,
    what it wrote is kept (the same command continues it), and training never started (no checkpoint)."""
