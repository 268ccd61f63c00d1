"""Reading the documents of parquet files: path resolution, identity for the cache, streamed text batches.

Only the text column is read, one row group at a time in batches of a few thousand rows, so memory is set
by the row group size, never by the file size. Every way a file can be wrong (missing, empty, not parquet,
no such column, a column that is not text, corrupted mid-file) becomes one DataError line naming the file.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from trainer.data.arrow_source import ARROW_SUFFIX, ArrowFile, dataset_folder_files
from trainer.errors import DataError

FINGERPRINT_BYTES = 64 * 1024
"""The footer (schema, row-group offsets and statistics) lives in a parquet file's tail: hashing the last
64 KiB with the size tells a rewritten file from the same one without reading gigabytes."""


@dataclass(frozen=True)
class Source:
    """One input file as the cache sees it."""

    path: Path
    size: int
    mtime_ns: int
    fingerprint: str

    def to_meta(self) -> dict:
        return {"path": str(self.path), "size": self.size, "mtime": self.mtime_ns / 1e9,
                "fingerprint": self.fingerprint}


@dataclass
class TextBatch:
    """Consecutive documents of one row group, in file order."""

    texts: list
    """str, or None for a null document."""
    first_row: int
    """Global index (over all inputs, in order) of texts[0]: what the validation split hashes."""
    compressed_bytes: int
    """This batch's share of the text column's compressed bytes, for progress."""
    replaced_utf8: int
    """Documents whose invalid UTF-8 bytes were replaced by U+FFFD."""
    source: str
    group: int
    """Ordinal of this batch's row group over all inputs (0, 1, ...): where a resumed prepare restarts."""
    ends_group: bool
    """The last batch of its row group: after it is written, the group is finished."""
    file_index: int = 0
    """0-based position of its file among the inputs."""
    ends_file: bool = False
    """The last batch of its file: after it is written, the file is finished."""


def split_spec(spec: str | Path) -> list[str]:
    """A data spec as its parts: one path, folder or glob, or several joined by os.pathsep (what the app's
    picker gives for several ticked files, and fetch prints for files not alone in their folder)."""
    text = str(spec)
    if os.pathsep in text and not os.path.exists(os.path.expanduser(text)):
        return [part for part in text.split(os.pathsep) if part]
    return [text]


def resolve_paths(specs: Sequence[str | Path]) -> list[Path]:
    """Parquet (or save_to_disk .arrow) files from files, directories (searched recursively), globs and
    os.pathsep-joined lists of them, in a stable order."""
    if isinstance(specs, (str, Path)):
        specs = [specs]
    specs = [part for spec in specs for part in split_spec(spec)]
    if not specs:
        raise DataError("no input given; pass parquet files, a directory of them, or a glob")
    found: list[Path] = []
    for spec in specs:
        text = os.path.expanduser(str(spec))
        path = Path(text)
        if path.is_dir():
            if not os.access(path, os.R_OK | os.X_OK):  # rglob would find nothing and say "no .parquet files"
                raise DataError(f"directory {path} cannot be read (permission denied); fix its permissions "
                                "(chmod u+rx) or point at a folder you can read")
            files = sorted(p for p in path.rglob("*.parquet") if p.is_file()) or dataset_folder_files(path)
            if not files:
                raise DataError(f"directory {path} holds no .parquet files (nor a datasets save_to_disk folder's "
                                ".arrow files); point at a FineWeb shard or its folder")
        elif path.exists():
            files = [path]
        elif glob.has_magic(text):
            files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not files:
                raise DataError(f"the pattern {text} matches no files; check the path (quote it in the shell)")
        else:
            raise DataError(f"input {path} does not exist; pass parquet files, a directory or a glob")
        found.extend(files)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def describe(path: Path) -> Source:
    """Size, mtime and a footer fingerprint: everything the cache key needs, in microseconds per file."""
    try:
        st = path.stat()
        with open(path, "rb") as f:
            f.seek(max(0, st.st_size - FINGERPRINT_BYTES))
            tail = f.read()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror}); check the file and its permissions") from None
    digest = hashlib.sha256(str(st.st_size).encode() + b":" + tail).hexdigest()
    return Source(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, fingerprint=digest[:32])


def open_parquet(path: Path) -> pq.ParquetFile | ArrowFile:
    """The file opened for reading (parquet, or a save_to_disk .arrow file), or one DataError line saying
    why it is not usable."""
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path} is empty (0 bytes), not a parquet file; re-download or remove it")
        if path.suffix == ARROW_SUFFIX:
            return ArrowFile(path)
        return pq.ParquetFile(path)
    except DataError:
        raise
    except (pa.ArrowException, ValueError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        kind = "Arrow (datasets save_to_disk)" if path.suffix == ARROW_SUFFIX else "parquet"
        raise DataError(f"{path} is not a readable {kind} file ({reason}); re-download it or remove it "
                        "from the inputs") from None


def is_text_type(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def check_text_column(pf: pq.ParquetFile, path: Path, column: str) -> None:
    schema = pf.schema_arrow
    if column not in schema.names:
        text_like = [f.name for f in schema if is_text_type(f.type)]
        hint = f"; its text columns: {', '.join(text_like)}" if text_like else ""
        raise DataError(f"{path} has no column {column!r} (columns: {', '.join(schema.names) or 'none'}{hint}); "
                        "pass --text-column NAME")
    kind = schema.field(column).type
    if not is_text_type(kind):
        raise DataError(f"column {column!r} of {path} holds {kind}, not text; pass --text-column NAME of a "
                        "string column")


def column_chunk_bytes(pf: pq.ParquetFile, column: str) -> list[int]:
    """Compressed bytes of `column` in each row group (what reading it costs), for progress and ETA."""
    if isinstance(pf, ArrowFile):
        return pf.column_bytes(column)
    meta = pf.metadata
    sizes = []
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        sizes.append(sum(rg.column(j).total_compressed_size for j in range(rg.num_columns)
                         if rg.column(j).path_in_schema.split(".")[0] == column))
    return sizes


def column_text_bytes(pf: pq.ParquetFile, column: str) -> int:
    """Uncompressed bytes of the text column from the footer (an upper bound on its UTF-8 bytes)."""
    if isinstance(pf, ArrowFile):
        return sum(pf.column_bytes(column))
    meta = pf.metadata
    return sum(meta.row_group(i).column(j).total_uncompressed_size
               for i in range(meta.num_row_groups) for j in range(meta.row_group(i).num_columns)
               if meta.row_group(i).column(j).path_in_schema.split(".")[0] == column)


def to_texts(array: pa.Array) -> tuple[list, int]:
    """Python strings (None for nulls) and how many had invalid UTF-8, which is replaced by U+FFFD."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    try:
        return array.to_pylist(), 0
    except UnicodeDecodeError:
        pass
    # Arrow does not validate UTF-8 when reading parquet: decode the raw bytes one by one, keeping the text.
    if pa.types.is_string_view(array.type):
        array = array.cast(pa.string())
    raw = array.view(pa.large_binary() if pa.types.is_large_string(array.type) else pa.binary()).to_pylist()
    texts, replaced = [], 0
    for value in raw:
        if value is None:
            texts.append(None)
            continue
        try:
            texts.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(value.decode("utf-8", errors="replace"))
            replaced += 1
    return texts, replaced


def iter_text_batches(files: Iterable[tuple[Path, pq.ParquetFile]], column: str, batch_rows: int = 1024,
                      start_group: int = 0, start_row: int = 0) -> Iterator[TextBatch]:
    """Every document of every file, in order, `batch_rows` at a time, with global row indices.

    `start_group` skips that many row groups (counted over all inputs; `start_row` is the global index of
    the first row after them), to resume after the last finished row group.
    """
    row, group = start_row, -1
    for index, (path, pf) in enumerate(files):
        chunk_bytes = column_chunk_bytes(pf, column)
        last_group = pf.metadata.num_row_groups - 1
        for rg in range(pf.metadata.num_row_groups):
            group += 1
            if group < start_group:
                continue
            rg_rows = pf.metadata.row_group(rg).num_rows
            done_rows = done_bytes = 0
            try:
                for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[rg], columns=[column],
                                             use_threads=False):
                    texts, replaced = to_texts(batch.column(0))
                    done_rows += len(texts)
                    share = chunk_bytes[rg] * done_rows // max(rg_rows, 1) - done_bytes
                    done_bytes += share
                    ends = done_rows >= rg_rows
                    yield TextBatch(texts, row, share, replaced, str(path), group, ends, index, ends and rg == last_group)
                    row += len(texts)
            except (pa.ArrowException, OSError, ValueError, KeyError) as err:
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise DataError(f"{path} could not be read at row group {rg} ({reason}); the file is corrupted "
                                "or changed while reading: re-download it") from None
