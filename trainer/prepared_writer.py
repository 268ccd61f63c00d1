"""Writing one prepared dataset safely: partial files, a resume journal, a lock, renames at the end.

Tokens are appended to `train.bin.partial` / `val.bin.partial`; after each finished row group (at most
every JOURNAL_INTERVAL seconds) `resume.json` records how many bytes of each are complete and where the
input stands, so a prepare killed mid-run continues from there instead of from zero. At the end the
partials are renamed to train.bin / val.bin; the caller then writes meta.json, the completion marker.
An exclusive lock on the directory makes a second prepare of the same data wait, then reuse the result.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trainer.dataset import META_NAME, TOKEN_BYTES, TRAIN_NAME, VAL_NAME
from trainer.errors import DataError

JOURNAL_NAME = "resume.json"
LOCK_NAME = ".prepare.lock"
JOURNAL_INTERVAL = 0.5
"""Seconds between journal writes: resuming loses at most this much work plus one row group."""


@dataclass
class Tally:
    """What has been written so far (a resumed prepare starts from the journal's copy)."""

    train_tokens: int = 0
    val_tokens: int = 0
    train_docs: int = 0
    val_docs: int = 0
    null: int = 0
    empty: int = 0
    replaced: int = 0
    bytes_done: int = 0
    """Compressed text-column bytes of the finished batches, for progress."""
    last_train_len: int = 0
    """Tokens (with EOT) of the last train document: moved to val if the fraction drew none."""


def check_disk(directory: Path, need: int) -> None:
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise DataError(f"{directory} needs about {need / 1e9:.2f} GB for the tokens but its disk has "
                        f"{free / 1e9:.2f} GB free; free some space or pass --out DIR on a larger disk")


class PreparedWriter:
    """Context manager owning a dataset directory's partial files while one prepare writes them."""

    def __init__(self, directory: Path, key: str) -> None:
        self.directory = directory
        self.key = key
        self.partial = {name: directory / f"{name}.partial" for name in (TRAIN_NAME, VAL_NAME)}
        self.tally = Tally()
        self.next_group = 0
        self.next_row = 0
        self._files: dict = {}
        self._lock = None

    def __enter__(self) -> "PreparedWriter":
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.directory / LOCK_NAME, "a+b")
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX)  # a concurrent prepare here finishes first
        return self

    def __exit__(self, *exc) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()

    def start(self) -> bool:
        """Invalidate any older dataset here and open the partial files; True when resuming a journal."""
        (self.directory / META_NAME).unlink(missing_ok=True)
        journal = self._read_journal()
        if journal is not None:
            for name, path in self.partial.items():
                f = open(path, "r+b")
                f.truncate(journal["sizes"][name])
                f.seek(0, os.SEEK_END)
                self._files[name] = f
            self.tally = Tally(**journal["tally"])
            self.next_group, self.next_row = journal["next_group"], journal["next_row"]
            return True
        (self.directory / JOURNAL_NAME).unlink(missing_ok=True)
        self._files = {name: open(path, "w+b") for name, path in self.partial.items()}
        return False

    def _read_journal(self) -> dict | None:
        try:
            journal = json.loads((self.directory / JOURNAL_NAME).read_text())
            if journal.get("key") != self.key:
                return None
            for name, path in self.partial.items():
                if path.stat().st_size < journal["sizes"][name]:
                    return None
            Tally(**journal["tally"])
            return journal
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def append(self, train: np.ndarray, val: np.ndarray) -> None:
        for name, tokens in ((TRAIN_NAME, train), (VAL_NAME, val)):
            if len(tokens):
                self._write(name, memoryview(tokens).cast("B"))

    def _write(self, name: str, data) -> None:
        try:
            self._files[name].write(data)
        except OSError as err:
            path = self.partial[name]
            if err.errno == errno.ENOSPC:
                raise DataError(f"the disk filled up while writing {path}; free some space or pass --out DIR "
                                "on a larger disk, then prepare again (it resumes)") from None
            raise DataError(f"cannot write {path} ({err.strerror}); check the directory and its disk") from None

    def checkpoint(self, next_group: int, next_row: int) -> None:
        """Record that every row group before `next_group` is written (rows before `next_row`)."""
        for f in self._files.values():
            f.flush()  # the journal must never claim bytes still in Python's buffer
        journal = {"key": self.key, "next_group": next_group, "next_row": next_row, "tally": asdict(self.tally),
                   "sizes": {name: f.tell() for name, f in self._files.items()}}
        tmp = self.directory / f"{JOURNAL_NAME}.tmp"
        tmp.write_text(json.dumps(journal))
        os.replace(tmp, self.directory / JOURNAL_NAME)

    def finish(self) -> Tally:
        """Ensure one validation document, fsync, rename the partials; the caller writes meta.json next."""
        tally = self.tally
        if tally.val_docs == 0 and tally.last_train_len:
            # Too few documents for the fraction to draw one: the last train document becomes validation.
            train = self._files[TRAIN_NAME]
            train.flush()
            size = train.tell() - tally.last_train_len * TOKEN_BYTES
            train.seek(size)
            moved = train.read()
            train.seek(size)
            train.truncate(size)
            self._write(VAL_NAME, moved)
            tally.train_tokens -= tally.last_train_len
            tally.val_tokens += tally.last_train_len
            tally.train_docs -= 1
            tally.val_docs += 1
        for f in self._files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
        self._files.clear()
        os.replace(self.partial[TRAIN_NAME], self.directory / TRAIN_NAME)
        os.replace(self.partial[VAL_NAME], self.directory / VAL_NAME)
        (self.directory / JOURNAL_NAME).unlink(missing_ok=True)
        return tally
