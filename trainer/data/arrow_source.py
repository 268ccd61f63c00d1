"""Folders written by `datasets`' save_to_disk, read through pyarrow (never importing `datasets`).

Such a folder holds `data-00000-of-0000N.arrow` files (Arrow IPC streams of record batches, 1000 rows each
by default), `dataset_info.json` and `state.json`, whose `_data_files` names the data files in order; a
DatasetDict has one such folder per split under a `dataset_dict.json`. An `ArrowFile` answers the few
questions the readers ask a `pyarrow.parquet.ParquetFile` (rows, row groups, schema, batches of a column),
with each record batch standing for a row group. The file is memory-mapped, so listing its batches reads
only their headers and a batch's text is paged in when it is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa

ARROW_SUFFIX = ".arrow"
STATE_NAME = "state.json"


@dataclass(frozen=True)
class _Group:
    num_rows: int


class _Metadata:
    def __init__(self, batches: list[pa.RecordBatch]) -> None:
        self._groups = [_Group(b.num_rows) for b in batches]
        self.num_rows = sum(g.num_rows for g in self._groups)
        self.num_row_groups = len(self._groups)

    def row_group(self, i: int) -> _Group:
        return self._groups[i]


class ArrowFile:
    """One Arrow IPC file (stream or file format) with the part of ParquetFile's interface fwtui reads."""

    def __init__(self, path: Path) -> None:
        source = pa.memory_map(str(path))
        try:
            reader = pa.ipc.open_stream(source)
            self.batches = list(reader)
            self.schema_arrow = reader.schema
        except pa.ArrowInvalid:  # not a stream: the random-access file format
            reader = pa.ipc.open_file(source)
            self.batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
            self.schema_arrow = reader.schema
        self.metadata = _Metadata(self.batches)

    def read(self, columns: list[str], use_threads: bool = False) -> pa.Table:
        schema = pa.schema([self.schema_arrow.field(name) for name in columns])
        return pa.Table.from_batches([b.select(columns) for b in self.batches], schema=schema)

    def read_row_group(self, i: int, columns: list[str]) -> pa.Table:
        return pa.Table.from_batches([self.batches[i].select(columns)])

    def iter_batches(self, batch_size: int, row_groups: list[int], columns: list[str],
                     use_threads: bool = False) -> Iterator[pa.RecordBatch]:
        for i in row_groups:
            batch = self.batches[i].select(columns)
            for start in range(0, batch.num_rows, batch_size):
                yield batch.slice(start, batch_size)

    def column_bytes(self, column: str) -> list[int]:
        """Bytes of `column` in each batch (uncompressed: Arrow files as datasets writes them are)."""
        return [b.column(column).nbytes for b in self.batches]


def dataset_folder_files(folder: Path) -> list[Path]:
    """The data files of a save_to_disk folder (each split's state.json order), else any .arrow file under it;
    [] when there is none. datasets' own caches (cache-*.arrow) are not data."""
    states = sorted(folder.rglob(STATE_NAME))
    files: list[Path] = []
    for state in states:
        try:
            names = [entry["filename"] for entry in json.loads(state.read_text())["_data_files"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        files += [state.parent / name for name in names if (state.parent / name).is_file()]
    if files:
        return files
    return sorted(p for p in folder.rglob("*" + ARROW_SUFFIX) if p.is_file() and not p.name.startswith("cache-"))
