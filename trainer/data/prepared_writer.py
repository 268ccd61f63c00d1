"""Writing one prepared dataset safely: partial files, a resume journal, a lock, renames at the end.

Tokens are appended to `train.bin.partial` / `val.bin.partial`; after each finished row group (at most
every JOURNAL_INTERVAL seconds) `resume.json` records how many bytes of each are complete and where the
input stands, so a prepare killed mid-run continues from there instead of from zero. At the end the
partials are renamed to train.bin / val.bin; the caller then writes meta.json, the completion marker.
Before the renames, `finish()` tops the validation split up to a minimum (see MIN_VAL_TOKENS) with whole
documents from the end of train, so a small corpus still holds enough tokens to evaluate on.
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

from trainer.data.dataset import META_NAME, TOKEN_BYTES, TRAIN_NAME, VAL_NAME
from trainer.errors import DataError
from trainer.own_files import check_own_folder, fresh_file, open_own
from trainer.data.tokenizer import EOT

JOURNAL_NAME = "resume.json"
LOCK_NAME = ".prepare.lock"
JOURNAL_INTERVAL = 0.5
"""Seconds between journal writes: resuming loses at most this much work plus one row group."""
MIN_VAL_WINDOWS = 16
MIN_VAL_TOKENS = MIN_VAL_WINDOWS * (1024 + 1)
"""16,400 tokens: 16 full evaluation windows (block_size + 1 tokens) at GPT-2's context of 1024, so an
evaluation at the block size most presets use reads different text in each window instead of one short
document over and over. The row-hash split (val_fraction) gives a big corpus far more; a small one (the
demo corpus, 277k tokens; Shakespeare, 1.56M) gets too little from it and is topped up to this."""
MAX_VAL_SHARE = 0.10
"""The top-up never takes validation past 10% of the corpus's tokens: a tiny corpus keeps most for training."""
DISK_MARGIN = 16 << 20
"""Bytes kept free beyond the tokens: the journal, meta.json, and the filesystem's own blocks."""
TAIL_CHUNK_TOKENS = 1 << 16
"""Tokens read at a time while looking backwards through train for document boundaries (128 KB)."""


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


@dataclass(frozen=True)
class SplitTopUp:
    """What finish() moved between the splits after the row-hash split, for meta.json."""

    to_val_documents: int = 0
    to_val_tokens: int = 0
    """Whole trailing train documents moved to val to reach the minimum (tokens with their EOT)."""
    to_train_documents: int = 0
    to_train_tokens: int = 0
    """The last val document moved to train when the hash drew every document for val."""


def check_disk(directory: Path, tokens: int, how: str) -> None:
    """Refuse before writing when the disk cannot hold `tokens` (train.bin + val.bin, TOKEN_BYTES each, with
    DISK_MARGIN); the bytes an interrupted prepare already wrote here count as written."""
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    written = sum(p.stat().st_size for p in directory.glob("*.partial")) if directory.is_dir() else 0
    need = tokens * TOKEN_BYTES + DISK_MARGIN - written
    free = shutil.disk_usage(probe).free
    if free < need:
        approx = "" if how.startswith("exact") else "≈ "
        raise DataError(f"{directory} needs {_size(need)} for {approx}{tokens:,} tokens ({how}; {TOKEN_BYTES} "
                        f"bytes each in train.bin + val.bin) but its disk has {_size(free)} free; free some space "
                        "or pass --out DIR on a larger disk")


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.1f} MB"


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
        check_own_folder(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = os.fdopen(open_own(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT), "r+b")
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
                f = os.fdopen(open_own(path, os.O_RDWR), "r+b")  # never through a planted symlink
                f.truncate(journal["sizes"][name])
                f.seek(0, os.SEEK_END)
                self._files[name] = f
            self.tally = Tally(**journal["tally"])
            self.next_group, self.next_row = journal["next_group"], journal["next_row"]
            return True
        (self.directory / JOURNAL_NAME).unlink(missing_ok=True)
        # Made anew (a planted symlink is unlinked, not followed); readable by others as before: data, not secrets.
        self._files = {name: os.fdopen(fresh_file(path, os.O_RDWR, 0o644), "r+b")
                       for name, path in self.partial.items()}
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
        with os.fdopen(fresh_file(tmp), "w", encoding="utf-8") as f:
            f.write(json.dumps(journal))
        os.replace(tmp, self.directory / JOURNAL_NAME)

    def finish(self) -> tuple[Tally, SplitTopUp]:
        """Top validation up to its minimum, fsync, rename the partials; the caller writes meta.json next."""
        top_up = self._balance()
        for f in self._files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
        self._files.clear()
        os.replace(self.partial[TRAIN_NAME], self.directory / TRAIN_NAME)
        os.replace(self.partial[VAL_NAME], self.directory / VAL_NAME)
        (self.directory / JOURNAL_NAME).unlink(missing_ok=True)
        return self.tally, top_up

    def _balance(self) -> SplitTopUp:
        """Make both splits non-empty and val at least min(MIN_VAL_TOKENS, MAX_VAL_SHARE of the corpus).

        Only whole documents move, taken from the end of the giving split (found by their EOT terminators),
        so the result depends on the input order alone, never on batch size or thread count.
        """
        tally = self.tally
        if tally.train_docs == 0 and tally.val_docs >= 2:
            docs, tokens = self._move_tail(VAL_NAME, TRAIN_NAME, lambda taken, length: not taken)
            tally.val_docs, tally.val_tokens = tally.val_docs - docs, tally.val_tokens - tokens
            tally.train_docs, tally.train_tokens = tally.train_docs + docs, tally.train_tokens + tokens
            return SplitTopUp(to_train_documents=docs, to_train_tokens=tokens)
        total = tally.train_tokens + tally.val_tokens
        target = min(MIN_VAL_TOKENS, int(MAX_VAL_SHARE * total))
        cap = MAX_VAL_SHARE * total

        def wanted(taken: int, length: int) -> bool:
            val = tally.val_tokens + taken
            if tally.val_docs == 0 and taken == 0:
                return True  # val needs one document whatever its size
            return val < target and val + length <= cap

        docs, tokens = self._move_tail(TRAIN_NAME, VAL_NAME, wanted)
        tally.train_docs, tally.train_tokens = tally.train_docs - docs, tally.train_tokens - tokens
        tally.val_docs, tally.val_tokens = tally.val_docs + docs, tally.val_tokens + tokens
        return SplitTopUp(to_val_documents=docs, to_val_tokens=tokens)

    def _move_tail(self, source: str, dest: str, wanted) -> tuple[int, int]:
        """Move the source split's last documents to the end of dest while `wanted(tokens taken so far,
        next document's length)` says so, never its first document; (documents, tokens) moved."""
        src = self._files[source]
        src.flush()
        size = src.tell() // TOKEN_BYTES
        taken = docs = 0
        for length in _trailing_documents(src, size):
            if not wanted(taken, length):
                break
            taken += length
            docs += 1
        if docs:
            cut = (size - taken) * TOKEN_BYTES
            src.seek(cut)
            moved = src.read()
            self._write(dest, moved)
            self._files[dest].flush()  # dest first: a kill between the two leaves the journal's sizes valid
            src.seek(cut)
            src.truncate(cut)
        return docs, taken


def _trailing_documents(f, tokens: int):
    """Lengths (tokens, EOT included) of the documents in a uint16 token file, last first; never the first
    document, so the split given from always keeps one. Reads backwards TAIL_CHUNK_TOKENS at a time.

    Every document ends with EOT and no document's own tokens are EOT (encode_ordinary never emits it), so
    a document boundary is exactly the position after an EOT.
    """
    end = tokens  # one past the last token of the document being measured
    chunk_end = tokens - 1  # the file's last token is the last document's own EOT: not a boundary
    while chunk_end > 0:
        start = max(0, chunk_end - TAIL_CHUNK_TOKENS)
        f.seek(start * TOKEN_BYTES)
        chunk = np.frombuffer(f.read((chunk_end - start) * TOKEN_BYTES), dtype=np.uint16)
        for index in np.flatnonzero(chunk == EOT)[::-1]:
            boundary = start + int(index) + 1  # the next document starts after this EOT
            yield end - boundary
            end = boundary
        chunk_end = start
