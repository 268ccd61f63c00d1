"""Folders written by `datasets`' save_to_disk are read wherever a parquet folder is, through pyarrow alone.

The folders are made here as save_to_disk writes them (datasets is not installed, nor imported): Arrow IPC
streams data-0000i-of-0000N.arrow, dataset_info.json, state.json naming the files, and for a DatasetDict a
dataset_dict.json over one such folder per split."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import synthetic_texts, write_fineweb_parquet
from trainer.data.ingest import prepare, resolve_data
from trainer.data.parquet_source import resolve_paths
from trainer.data.token_count import count_tokens
from trainer.errors import DataError


def save_to_disk(folder, texts, files=2, batch_rows=40, token_counts=None):
    """What Dataset.save_to_disk writes for a {"text", "token_count"?} dataset, split into `files` shards."""
    folder.mkdir(parents=True)
    columns = {"text": pa.array(texts, pa.string())}
    if token_counts is not None:
        columns["token_count"] = pa.array(token_counts, pa.int64())
    table = pa.table(columns).replace_schema_metadata({"huggingface": json.dumps({"info": {"features": {}}})})
    per_file = -(-len(texts) // files)
    names = []
    for i in range(files):
        name = f"data-{i:05d}-of-{files:05d}.arrow"
        names.append({"filename": name})
        part = table.slice(i * per_file, per_file)
        with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in part.to_batches(max_chunksize=batch_rows):
                writer.write_batch(batch)
    (folder / "dataset_info.json").write_text(json.dumps({"citation": "", "description": "", "features": {
        "text": {"dtype": "string", "_type": "Value"}}}))
    (folder / "state.json").write_text(json.dumps({"_data_files": names, "_fingerprint": "0" * 16,
                                                   "_format_columns": None, "_format_kwargs": {},
                                                   "_format_type": None, "_output_all_columns": False,
                                                   "_split": "train"}))
    return folder


def read_bin(path):
    return np.fromfile(path, dtype=np.uint16)


def test_a_save_to_disk_folder_prepares_to_the_same_tokens_as_its_parquet(tmp_path):
    texts = synthetic_texts(150, seed=3) + [None, "", "   "]
    folder = save_to_disk(tmp_path / "ds", texts, files=3)
    parquet = write_fineweb_parquet(tmp_path / "same.parquet", texts, row_group_size=40)
    from_arrow = prepare([folder], tmp_path / "a")
    from_parquet = prepare([parquet], tmp_path / "p")
    assert (read_bin(from_arrow.dir / "train.bin") == read_bin(from_parquet.dir / "train.bin")).all()
    assert (read_bin(from_arrow.dir / "val.bin") == read_bin(from_parquet.dir / "val.bin")).all()
    assert from_arrow.meta["skipped"] == {"null": 1, "empty": 2}
    assert [s["path"] for s in from_arrow.meta["sources"]] == [str(folder / f"data-0000{i}-of-00003.arrow")
                                                              for i in range(3)]


def test_count_reads_token_count_from_arrow_or_estimates(tmp_path):
    texts = synthetic_texts(90, seed=4)
    exact = count_tokens([save_to_disk(tmp_path / "exact", texts, token_counts=[7] * 90)])
    assert exact.exact and exact.tokens == 7 * 90 and exact.documents == 90
    estimate = count_tokens([save_to_disk(tmp_path / "plain", texts)])
    assert not estimate.exact and estimate.documents == 90 and estimate.tokens > 0


def test_a_dataset_dict_folder_takes_each_splits_files_in_order_and_skips_caches(tmp_path):
    root = tmp_path / "dd"
    save_to_disk(root / "test", synthetic_texts(20, seed=5), files=1)
    save_to_disk(root / "train", synthetic_texts(80, seed=6), files=2)
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    (root / "train" / "cache-abc123.arrow").write_bytes(b"not data")
    files = resolve_paths([root])
    assert [p.relative_to(root).as_posix() for p in files] == [
        "test/data-00000-of-00001.arrow", "train/data-00000-of-00002.arrow", "train/data-00001-of-00002.arrow"]
    data = resolve_data(str(root / "train"))
    assert data.documents == 80


def test_a_damaged_arrow_file_is_one_line(tmp_path):
    folder = save_to_disk(tmp_path / "ds", synthetic_texts(30), files=1)
    (folder / "data-00000-of-00001.arrow").write_bytes(b"garbage" * 10)
    with pytest.raises(DataError, match=r"data-00000-of-00001.arrow is not a readable Arrow"):
        prepare([folder], tmp_path / "out")


def test_datasets_is_never_imported(tmp_path):
    folder = save_to_disk(tmp_path / "ds", synthetic_texts(30), files=1)
    code = ("import sys; from trainer.data.ingest import prepare; prepare([sys.argv[1]], sys.argv[2]); "
            "assert 'datasets' not in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(folder), str(tmp_path / "out")], check=True)
