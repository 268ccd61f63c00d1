"""RUN/ckpt.pt written atomically and read back safely, plus the RNG states an exact resume needs.

Save: check free space (twice the last checkpoint), write a temp file in the same directory, flush,
fsync, keep the current checkpoint as ckpt.prev.pt (a hard link, so ckpt.pt never disappears) unless
ckpt.pt is itself damaged (then the good ckpt.prev.pt stays), os.replace the temp over ckpt.pt, fsync the
directory. A save that fails or is killed leaves ckpt.pt as it was and at most a temp file, which the next
start checks (trainer.train.leftovers: a complete newer one becomes ckpt.pt). A full disk is said as
"no space left on device" with the folder and its free space, whatever torch's writer makes of the
OSError. Load: torch.load(weights_only=True) only; a checkpoint that is corrupt falls back to
ckpt.prev.pt with a warning; one that holds arbitrary Python objects is refused, never unpickled.

During a run the save happens on trainer.train.checkpointer's writer thread, on a CPU copy of the state;
its `abort` flag (a third Ctrl-C) gives the write up between chunks, leaving ckpt.pt as it was.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from trainer.errors import CheckpointError

CKPT_FILE = "ckpt.pt"
PREV_FILE = "ckpt.prev.pt"
TEMP_MARK = ".tmp-"

NANOGPT_KEYS = ("model", "optimizer", "model_args", "iter_num", "best_val_loss", "config")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some filesystems cannot open a directory; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def payload_bytes(payload: dict) -> int:
    """Bytes of the tensors in a payload (a floor for the file size), for the free-space check."""
    total = 0
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            total += item.numel() * item.element_size()
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def size_text(n: float) -> str:
    """1.5e9 -> '1.50 GB'; 3e7 -> '30 MB'; 2e4 -> '20 kB' (decimal units, as `df -H`)."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def what_is_kept(path: Path) -> str:
    """The end of a failed save's line: which checkpoint is still on disk (never a claim when none is)."""
    for name in (path.name, PREV_FILE):
        if (path.parent / name).is_file():
            return f"the previous checkpoint is kept ({path.parent / name})"
    return f"no checkpoint is saved in {path.parent} yet"


def check_free_space(directory: Path, needed_bytes: int, path: Path | None = None) -> None:
    free = free_bytes(directory)
    if free is not None and free < needed_bytes:
        raise CheckpointError(
            f"only {size_text(free)} free in {directory}, a checkpoint needs about {size_text(needed_bytes)} "
            f"(twice its size); free some space or use --out on a larger disk; "
            f"{what_is_kept(path or directory / CKPT_FILE)}")


def _no_space(path: Path, needed_bytes: int) -> str:
    free = free_bytes(path.parent)
    room = f"{size_text(free)} free" if free is not None else "free space unknown"
    return (f"could not write {path}: no space left on device in {path.parent} ({room}, the checkpoint needs "
            f"about {size_text(needed_bytes)}); free some space or use --out on a larger disk; "
            f"{what_is_kept(path)}")


class SaveAborted(CheckpointError):
    """A write given up on purpose (the `abort` flag was set: a third Ctrl-C); the old checkpoint stays."""


class _CheckedFile:
    """The temp file as torch.save sees it: each write first checks the abort flag, so a write can be
    given up between chunks instead of running to its end; and an OSError of a write is kept, because
    torch's zip writer turns it into "inline_container.cc: unexpected pos" (the errno is lost)."""

    def __init__(self, f, abort: threading.Event | None) -> None:
        self._f, self._abort = f, abort
        self.error: OSError | None = None

    def write(self, data) -> int:
        if self._abort is not None and self._abort.is_set():
            raise SaveAborted("checkpoint write aborted; the previous checkpoint is kept")
        try:
            return self._f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self._f.flush()


def save_checkpoint(path: str | Path, payload: dict, *, keep_previous: bool = True,
                    abort: threading.Event | None = None) -> int:
    """Write `payload` to `path` atomically; returns the file's size in bytes. Raises CheckpointError
    (old checkpoint intact, temp file removed) when space is short or the write fails, and SaveAborted
    when `abort` is set before the rename (the writer thread of trainer.train.checkpointer passes one)."""
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    previous = path.stat().st_size if path.exists() else payload_bytes(payload)
    check_free_space(directory, 2 * previous, path)
    tmp = directory / f"{path.name}{TEMP_MARK}{os.getpid()}-{time.monotonic_ns()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            checked = _CheckedFile(f, abort)
            try:
                torch.save(payload, checked)
            except Exception:
                if checked.error is not None:
                    raise checked.error from None  # the disk's own error, not the zip writer's
                raise
            f.flush()
            os.fsync(f.fileno())
        if abort is not None and abort.is_set():
            raise SaveAborted("checkpoint write aborted; the previous checkpoint is kept")
        if keep_previous and path.exists():
            _link_previous(path, directory / PREV_FILE)
        os.replace(tmp, path)
        _fsync_dir(directory)
        return path.stat().st_size
    except BaseException as err:  # KeyboardInterrupt too: never leave a partial file behind
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CheckpointError(_no_space(path, previous)) from None
        if isinstance(err, Exception) and not isinstance(err, CheckpointError):
            raise CheckpointError(f"could not write {path}: {err}; {what_is_kept(path)}") from err
        raise


def _link_previous(path: Path, prev: Path) -> None:
    """Make `prev` the current checkpoint's content without a moment where `path` is missing.

    A save killed after this link and before its own rename leaves `prev` and `path` one file (one inode).
    Then there is nothing to do, and linking again must not be tried: rename(2) of a hard link onto another
    link of the same file does nothing and succeeds, which would leave the staging name behind.

    A damaged `path` (a resume fell back past it to `prev`) is never linked: `prev` may be the only good
    checkpoint, and the save's rename replaces the damaged file anyway."""
    if prev.exists() and os.path.samefile(path, prev):
        return
    if checkpoint_iter(path) is None:
        return
    staging = prev.with_name(prev.name + TEMP_MARK + str(os.getpid()))
    try:
        os.link(path, staging)
    except OSError:  # no hard links here (some network filesystems): copy instead
        shutil.copy2(path, staging)
    os.replace(staging, prev)


def peek_checkpoint(path: Path) -> dict | None:
    """A complete checkpoint file's dict with its tensors memory-mapped, None for one that is damaged,
    partial or unsafe. It reads the zip's directory (written last, so a file cut short has none) and the
    small pickle, never the tensors' bytes: milliseconds for any size."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - damaged, partial or unsafe: in every case not a checkpoint to keep
        return None
    return data if isinstance(data, dict) else None


def checkpoint_iter(path: Path) -> int | None:
    """The iter_num of a complete checkpoint file (peek_checkpoint), None for one that is not."""
    data = peek_checkpoint(path)
    return data["iter_num"] if data is not None and isinstance(data.get("iter_num"), int) else None


def _load_one(path: Path) -> dict:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "GLOBAL" in text or "Unsupported global" in text:
            # A file that asks to build arbitrary Python objects: refuse, never unpickle it fully.
            raise CheckpointError(
                f"{path}: refused, it holds Python objects beyond tensors and plain values (unsafe to load); "
                "use a checkpoint you trust") from None
        raise _Corrupt(f"{path}: unreadable (not a complete torch checkpoint)") from None
    except Exception as err:  # noqa: BLE001 - EOFError, BadZipFile, RuntimeError, and KeyError or IndexError
        # from the weights-only unpickler reading garbage: a damaged file, never retried with full unpickling
        first = str(err).splitlines()[0][:160] if str(err) else ""
        raise _Corrupt(f"{path}: unreadable ({type(err).__name__}{': ' + first if first else ''})") from None
    if not isinstance(data, dict):
        raise _Corrupt(f"{path}: not a checkpoint (holds a {type(data).__name__}, not a dict)")
    return data


class _Corrupt(Exception):
    pass


def load_checkpoint(path: str | Path, *, on_warning: Callable[[str], None] | None = None) -> dict:
    """A checkpoint dict from a run directory or a ckpt.pt. A corrupt ckpt.pt falls back to ckpt.prev.pt
    beside it (reported through `on_warning`); an unsafe one raises CheckpointError."""
    path = Path(path)
    if path.is_dir():
        path = path / CKPT_FILE
    prev = path.with_name(PREV_FILE)
    if not path.exists():
        if prev.exists():
            if on_warning:
                on_warning(f"{path} is missing; using the previous checkpoint {prev}")
            path = prev
        else:
            raise CheckpointError(f"no checkpoint at {path}; train first, or point to a run directory "
                                  "that holds ckpt.pt")
    try:
        return _load_one(path)
    except _Corrupt as err:
        if path != prev and prev.exists():
            try:
                data = _load_one(prev)
            except _Corrupt as err2:
                raise CheckpointError(f"{err}; the previous one too: {err2}") from None
            if on_warning:
                on_warning(f"{err}; resuming from the previous checkpoint {prev} (iter {data.get('iter_num')})")
            return data
        raise CheckpointError(f"{err}; no previous checkpoint to fall back to") from None


# --- RNG states as plain values (weights_only=True accepts tensors, ints, floats, strings, lists, dicts) ---

def capture_rng_state() -> dict:
    version, internal, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
