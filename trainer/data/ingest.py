"""`prepare`: parquet documents in, nanoGPT's train.bin / val.bin out, cached by the inputs and settings.

The pipeline: one reader thread streams the text column (parquet_source), a pool of `workers` threads
encodes batches of documents (tiktoken releases the GIL while encoding), and this thread writes each
batch's tokens, in input order, through a PreparedWriter (partial files, a journal to resume from after
the last finished row group, renames at the end); meta.json comes last and marks the directory complete. Each document is its tokens then <|endoftext|> (50256), as nanoGPT's
prepare.py writes them. Whether a document goes to validation depends first on its global row index
(a hash below val_fraction); then, at the end, whole trailing train documents move to validation until it
holds MIN_VAL_TOKENS (at most MAX_VAL_SHARE of the corpus; prepared_writer). Both steps depend on the input
order alone, so the split is the same for any batch size or thread count; meta.json's "split" says what
each did.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from trainer.data.dataset import (META_NAME, TRAIN_NAME, PreparedData, cache_root, is_prepared_dir,
                             open_prepared, write_meta)
from trainer.errors import ConfigError, DataError, StoppedWhilePreparing
from trainer.observe.events import PrepareProgress
from trainer.data.prepared_writer import (JOURNAL_INTERVAL, MAX_VAL_SHARE, MIN_VAL_TOKENS, PreparedWriter, SplitTopUp,
                                     Tally, check_disk)
from trainer.data.parquet_source import (Source, TextBatch, check_text_column, column_chunk_bytes, describe,
                                         iter_text_batches, open_parquet, resolve_paths)
from trainer.data.token_count import tokens_to_write
from trainer.data.arrow_source import dataset_folder_files
from trainer.data.tokenizer import EOT, encode_document, get_encoding, tokenizer_info

CACHE_LAYOUT = 2
"""Bump when the bytes prepare writes for the same inputs change, so old cache entries are not reused
(2: validation topped up to MIN_VAL_TOKENS; the constants of the split belong to the layout)."""
BATCH_ROWS = 256
"""Documents per encode task: big enough that thread hand-offs cost nothing, small enough to bound memory."""
PROGRESS_INTERVAL = 0.25
"""Seconds between PrepareProgress events (a few a second at most)."""
ProgressCallback = Callable[[PrepareProgress], None]


def prepare(paths: Sequence[str | Path] | str | Path, out_dir: str | Path | None = None, *,
            text_column: str = "text", val_fraction: float = 0.0005, workers: int = 0,
            progress: ProgressCallback | None = None, tokenizer_file: str | Path | None = None,
            stopping: Callable[[], bool] | None = None) -> PreparedData:
    """Tokenize parquet files (files, directories, globs) into `out_dir`, or into the cache when None.

    Reuses an earlier result of the same inputs (path, size, mtime, footer fingerprint) and settings at once.
    `stopping()` true (a Ctrl-C or SIGTERM of `train --data X.parquet`) stops at the next finished row group
    with StoppedWhilePreparing; the journal keeps what is done, and the same call continues from it.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction {val_fraction} is outside (0, 1); use e.g. 0.0005 (nanoGPT's) or 0.01")
    sources = [describe(path) for path in resolve_paths(paths)]
    tokenizer = tokenizer_info(tokenizer_file)
    key = cache_key(sources, text_column, val_fraction, tokenizer.sha256)
    directory = Path(out_dir).expanduser() if out_dir is not None else cache_root() / key[:24]
    reused = _reuse(directory, key)
    if reused is not None:
        return reused
    if out_dir is not None:
        _refuse_other_data(directory, key)
    return _build(sources, directory, key, text_column=text_column, val_fraction=val_fraction,
                  workers=workers or os.cpu_count() or 1, progress=progress, tokenizer_file=tokenizer_file,
                  stopping=stopping)


def find_prepared(paths: Sequence[str | Path] | str | Path, *, text_column: str = "text",
                  val_fraction: float = 0.0005, tokenizer_file: str | Path | None = None) -> PreparedData | None:
    """What `prepare` would reuse for these inputs and settings, when the cache holds it; None otherwise.
    Tokenizes nothing: the inputs' identity (size, mtime, footer) and the cache's meta.json only."""
    sources = [describe(path) for path in resolve_paths(paths)]
    key = cache_key(sources, text_column, val_fraction, tokenizer_info(tokenizer_file).sha256)
    return _reuse(cache_root() / key[:24], key)


def resolve_data(spec: str | Path, *, text_column: str = "text", val_fraction: float = 0.0005,
                 progress: ProgressCallback | None = None, tokenizer_file: str | Path | None = None,
                 workers: int = 0, stopping: Callable[[], bool] | None = None) -> PreparedData:
    """A prepared directory as it is; otherwise parquet (file, directory, glob) prepared through the cache."""
    path = Path(os.path.expanduser(str(spec)))
    if is_prepared_dir(path):
        return open_prepared(path, cached=True)
    if path.is_dir() and (path / TRAIN_NAME).exists() and not any(path.rglob("*.parquet")) \
            and not dataset_folder_files(path):
        raise DataError(f"{path} holds {TRAIN_NAME} but no {META_NAME} (nanoGPT's own data, or a prepare that "
                        "was interrupted); pass the parquet files instead, fwtui prepares them once")
    return prepare([spec], None, text_column=text_column, val_fraction=val_fraction, workers=workers,
                   progress=progress, tokenizer_file=tokenizer_file, stopping=stopping)


def check_data(spec: str | Path, *, text_column: str = "text") -> None:
    """What resolve_data would refuse before any work, from paths and parquet footers only (milliseconds a
    file): a missing path, a pattern that matches nothing, no `text_column` of text. DataError, one line."""
    path = Path(os.path.expanduser(str(spec)))
    if is_prepared_dir(path) or (path.is_dir() and (path / TRAIN_NAME).exists()):
        return  # prepared already (or nanoGPT's own .bin files: resolve_data says what to do)
    for file in resolve_paths([spec]):
        check_text_column(open_parquet(file), file, text_column)


def cache_key(sources: Sequence[Source], text_column: str, val_fraction: float, tokenizer_sha: str) -> str:
    """Hex digest of everything the output bytes depend on (not the worker count: it changes nothing)."""
    material = {"layout": CACHE_LAYOUT, "sources": [s.to_meta() for s in sources], "text_column": text_column,
                "val_fraction": repr(float(val_fraction)), "tokenizer_sha256": tokenizer_sha}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def is_validation(rows: np.ndarray, val_fraction: float) -> np.ndarray:
    """Which global row indices belong to validation: a splitmix64 hash of the index below a threshold."""
    z = rows.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return z < np.uint64(min(int(val_fraction * 2.0**64), 2**64 - 1))


def _reuse(directory: Path, key: str) -> PreparedData | None:
    if not (directory / META_NAME).is_file():
        return None
    try:
        data = open_prepared(directory, cached=True)
    except DataError:
        return None  # incomplete or damaged: prepare again over it
    return data if data.meta.get("key") == key else None


def _refuse_other_data(directory: Path, key: str) -> None:
    """A complete prepared folder (meta.json) of other inputs or settings (another `key`) is never replaced
    silently: a run trained on it would lose its data, and its resume would point at tokens it never saw.
    The same inputs over damaged files (a truncated train.bin) are prepared again, as before."""
    try:
        meta = json.loads((directory / META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no meta.json (nothing complete there), or a damaged one: prepared again over it, as before
    if not isinstance(meta, dict) or meta.get("key") == key:
        return
    sources = meta.get("sources")
    names = ", ".join(Path(str(s.get("path", "?"))).name for s in sources if isinstance(s, dict)) \
        if isinstance(sources, list) else ""
    raise DataError(f"{directory} already holds data prepared from {names or 'other inputs'} (other inputs or "
                    f"settings); a run trained on it would lose its data: pass another --out, or remove "
                    f"{directory} first to replace it")


@dataclass
class _Encoded:
    """One TextBatch encoded: uint16 tokens (each document + EOT) for each split, and its tallies."""

    train: np.ndarray
    val: np.ndarray
    train_docs: int
    val_docs: int
    null: int
    empty: int
    replaced: int
    batch: TextBatch
    """The batch it came from (texts dropped): its row group and bytes."""
    next_row: int
    """Global index of the row after this batch."""


def _encode(encoding, batch: TextBatch, val_fraction: float) -> _Encoded:
    rows = np.arange(batch.first_row, batch.first_row + len(batch.texts), dtype=np.uint64)
    val_mask = is_validation(rows, val_fraction)
    parts: dict[bool, list[np.ndarray]] = {False: [], True: []}
    null = empty = 0
    for text, is_val in zip(batch.texts, val_mask.tolist()):
        if text is None:
            null += 1
        elif not text or text.isspace():
            empty += 1
        else:
            parts[is_val].append(encode_document(encoding, text))
    next_row = batch.first_row + len(batch.texts)
    batch.texts = []  # done with: free the text while the result waits its turn to be written
    return _Encoded(_join(parts[False]), _join(parts[True]), len(parts[False]), len(parts[True]), null, empty,
                    batch.replaced_utf8, batch, next_row)


def _join(docs: list[np.ndarray]) -> np.ndarray:
    """Documents (uint32 arrays) -> one uint16 array with EOT after each: one allocation, no Python ints."""
    out = np.empty(sum(len(d) for d in docs) + len(docs), dtype=np.uint16)
    pos = 0
    for doc in docs:
        end = pos + len(doc)
        out[pos:end] = doc
        out[end] = EOT
        pos = end + 1
    return out


READER_JOIN_SECONDS = 60.0
"""How long a stopped or failed prepare waits for its reader thread to finish the batch it is reading."""


def _reader(files, text_column: str, start: tuple[int, int], out: queue.Queue, stop: threading.Event) -> None:
    """Reader thread: put TextBatches on `out`, then None; an exception is put instead and ends it. Once
    `stop` is set it returns within one batch's read, whatever `out` holds (_build joins it)."""
    try:
        for batch in iter_text_batches(files, text_column, BATCH_ROWS, *start):
            if not _hand(out, batch, stop):
                return
        _hand(out, None, stop)
    except BaseException as err:  # noqa: BLE001 - handed to the writer thread, which raises it
        _hand(out, err, stop)


def _hand(out: queue.Queue, item, stop: threading.Event) -> bool:
    """Put ITEM on OUT unless `stop` is set first (a full queue whose reader has gone); whether it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _build(sources: list[Source], directory: Path, key: str, *, text_column: str, val_fraction: float,
           workers: int, progress: ProgressCallback | None, tokenizer_file,
           stopping: Callable[[], bool] | None = None) -> PreparedData:
    started = time.monotonic()
    files = [(s.path, open_parquet(s.path)) for s in sources]
    for path, pf in files:
        check_text_column(pf, path, text_column)
    rows = sum(pf.metadata.num_rows for _, pf in files)
    groups = sum(pf.metadata.num_row_groups for _, pf in files)
    if rows == 0:
        raise DataError(f"the inputs hold no rows ({_names(sources)}); pass parquet files that contain documents")
    if rows == 1:
        raise DataError(f"the inputs hold 1 row ({_names(sources)}): one document cannot be split into train and "
                        "val; training needs at least 2 documents, so pass more data")
    bytes_total = sum(sum(column_chunk_bytes(pf, text_column)) for _, pf in files)
    tokens, how = tokens_to_write(files, text_column)
    check_disk(directory, tokens, how)
    encoding = get_encoding(tokenizer_file)
    tokenizer = tokenizer_info(tokenizer_file)

    with PreparedWriter(directory, key) as writer:
        reused = _reuse(directory, key)  # a concurrent prepare of the same data may have just finished it
        if reused is not None:
            return reused
        resumed = writer.start()
        tally = writer.tally
        batches: queue.Queue = queue.Queue(maxsize=2 * workers)
        stop = threading.Event()
        reader = threading.Thread(target=_reader, daemon=True, name="fwtui-prepare-reader",
                                  args=(files, text_column, (writer.next_group, writer.next_row), batches, stop))
        source, last_emit, last_journal = "", started, started
        file_start = tally.train_tokens + tally.val_tokens, tally.train_docs + tally.val_docs
        file_resumed = resumed  # the file a resumed prepare starts in gave some of its tokens before
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="fwtui-encode") as pool:
                reader.start()
                pending: deque = deque()  # encode futures in input order: at most 2 per worker in flight
                finished = False
                while True:
                    while not finished and len(pending) < 2 * workers:
                        item = batches.get()
                        if isinstance(item, BaseException):
                            raise item
                        if item is None:
                            finished = True
                        else:
                            pending.append(pool.submit(_encode, encoding, item, val_fraction))
                    if not pending:
                        break
                    done: _Encoded = pending.popleft().result()
                    writer.append(done.train, done.val)
                    tally.train_tokens += len(done.train)
                    tally.val_tokens += len(done.val)
                    tally.train_docs += done.train_docs
                    tally.val_docs += done.val_docs
                    tally.null += done.null
                    tally.empty += done.empty
                    tally.replaced += done.replaced
                    tally.bytes_done += done.batch.compressed_bytes
                    source = done.batch.source
                    now = time.monotonic()
                    halt = done.batch.ends_group and stopping is not None and stopping()
                    if done.batch.ends_group and (now - last_journal >= JOURNAL_INTERVAL or halt):
                        writer.checkpoint(done.batch.group + 1, done.next_row)
                        last_journal = now
                    if halt:
                        raise StoppedWhilePreparing(
                            f"stopped while preparing the data: {done.batch.group + 1} row group(s) of "
                            f"{groups} done and kept in {directory}; run the same command again to continue "
                            "(no checkpoint: training had not started)")
                    where = (done.batch.file_index + 1, len(files))
                    if progress is not None and done.batch.ends_file:
                        ended = (source, tally.train_tokens + tally.val_tokens - file_start[0],
                                 tally.train_docs + tally.val_docs - file_start[1], file_resumed)
                        progress(_progress_event(tally, bytes_total, now - started, source, where, ended))
                    elif progress is not None and now - last_emit >= PROGRESS_INTERVAL:
                        last_emit = now
                        progress(_progress_event(tally, bytes_total, now - started, source, where))
                    if done.batch.ends_file:
                        file_start = tally.train_tokens + tally.val_tokens, tally.train_docs + tally.val_docs
                        file_resumed = False
        finally:
            stop.set()
            if reader.is_alive():
                # Not left running: a thread still inside pyarrow when the process exits can abort its
                # teardown ("terminate called without an active exception", apache/arrow#34314), seen once
                # in a stopped prepare. It returns within one batch's read.
                reader.join(READER_JOIN_SECONDS)
        if tally.train_docs + tally.val_docs < 2:
            raise DataError(f"{_names(sources)}: {tally.train_docs + tally.val_docs} document(s) with text "
                            f"({tally.null} null, {tally.empty} empty or whitespace-only skipped); "
                            "training needs at least 2: pass more data or the right --text-column")
        if progress is not None:
            progress(_progress_event(tally, bytes_total, time.monotonic() - started, source))
        tally, top_up = writer.finish()
        meta = {
            "key": key,
            "sources": [s.to_meta() for s in sources],
            "tokenizer": {"name": tokenizer.name, "sha256": tokenizer.sha256, "eot": EOT},
            "dtype": "uint16",
            "splits": {"train": {"documents": tally.train_docs, "tokens": tally.train_tokens},
                       "val": {"documents": tally.val_docs, "tokens": tally.val_tokens}},
            "split": split_record(val_fraction, top_up),
            "rows": rows,
            "skipped": {"null": tally.null, "empty": tally.empty},
            "skipped_note": "null: the text is null; empty: empty or whitespace-only text",
            "invalid_utf8_replaced": tally.replaced,
            "elapsed_seconds": round(time.monotonic() - started, 3),
            "resumed": resumed,
            "settings": {"text_column": text_column, "val_fraction": val_fraction, "workers": workers,
                         "layout": CACHE_LAYOUT},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_meta(directory, meta)
    return open_prepared(directory, cached=False)


def split_record(val_fraction: float, top_up: SplitTopUp) -> dict:
    """meta.json's account of how the split was made: the hash's fraction, then what the top-up moved."""
    if top_up.to_val_documents:
        method = (f"row-hash (val_fraction {val_fraction}), then the last {top_up.to_val_documents} train "
                  f"document(s) moved to val to reach min(min_val_tokens, max_val_share of the corpus)")
    elif top_up.to_train_documents:
        method = f"row-hash (val_fraction {val_fraction}), then the last val document moved to train (it was empty)"
    else:
        method = f"row-hash (val_fraction {val_fraction})"
    return {"method": method, "val_fraction": val_fraction, "min_val_tokens": MIN_VAL_TOKENS,
            "max_val_share": MAX_VAL_SHARE,
            "moved_to_val": {"documents": top_up.to_val_documents, "tokens": top_up.to_val_tokens},
            "moved_to_train": {"documents": top_up.to_train_documents, "tokens": top_up.to_train_tokens}}


def _names(sources: list[Source]) -> str:
    shown = ", ".join(str(s.path) for s in sources[:3])
    return shown + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")


def _progress_event(tally: Tally, bytes_total: int, elapsed: float, source: str, where: tuple[int, int] = (0, 0),
                    finished: tuple[str, int, int, bool] | None = None) -> PrepareProgress:
    """`where`: (1-based file, files); `finished`: (file, its tokens, its documents, resumed) when one just ended."""
    tokens, bytes_done = tally.train_tokens + tally.val_tokens, tally.bytes_done
    rate = bytes_done / elapsed if elapsed > 0 else 0.0
    eta = (bytes_total - bytes_done) / rate if rate > 0 else None
    name, file_tokens, file_docs, resumed = finished or ("", 0, 0, False)
    return PrepareProgress(documents=tally.train_docs + tally.val_docs, bytes_done=bytes_done,
                           bytes_total=bytes_total, tokens=tokens,
                           tokens_per_sec=tokens / elapsed if elapsed > 0 else 0.0, eta_seconds=eta,
                           source=source, file_index=where[0], file_count=where[1], finished_file=name,
                           file_tokens=file_tokens, file_documents=file_docs, file_resumed=resumed)
