"""Several shards at once: a folder, a glob or os.pathsep-joined files prepare in order with a line per file;
an interrupted prepare of many shards resumes in the first unfinished file; the free-space check counts the
tokens to write and names both figures."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import trainer.data.ingest as ingest
import trainer.data.prepared_writer as prepared_writer
from conftest import synthetic_texts, write_fineweb_parquet
from fwtui.cli import main as cli_main
from trainer.data.ingest import prepare
from trainer.errors import DataError


@pytest.fixture
def shard_dir(tmp_path):
    """Three FineWeb-schema shards with token_count filled, 4 row groups each."""
    folder = tmp_path / "shards"
    folder.mkdir()
    for i in range(3):
        path = write_fineweb_parquet(folder / f"{i:03d}_00000.parquet", synthetic_texts(80, seed=10 + i), 20)
        table = pq.read_table(path)
        table = table.set_column(8, "token_count", pa.array([50 + i] * 80, pa.int64()))
        pq.write_table(table, path, row_group_size=20)
    return folder


def test_a_folder_prepares_in_order_with_a_report_per_file(shard_dir, tmp_path, capsys):
    events = []
    data = prepare([shard_dir], tmp_path / "out", progress=events.append, workers=2)
    done = [e for e in events if e.finished_file]
    assert [os.path.basename(e.finished_file) for e in done] == [f"{i:03d}_00000.parquet" for i in range(3)]
    assert [(e.file_index, e.file_count) for e in done] == [(1, 3), (2, 3), (3, 3)]
    assert [e.file_documents for e in done] == [80, 80, 80]
    assert sum(e.file_tokens for e in done) == done[-1].tokens  # before the split's top-up moved anything
    assert data.train_tokens + data.val_tokens == done[-1].tokens
    assert cli_main(["prepare", str(shard_dir), "--out", str(tmp_path / "cli")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("file ")]
    assert [line.split(":")[0].strip() for line in lines] == [
        "file 1/3 000_00000.parquet", "file 2/3 001_00000.parquet", "file 3/3 002_00000.parquet"]


def test_ticked_files_joined_by_pathsep_prepare_those_in_that_order(shard_dir, tmp_path):
    files = [shard_dir / "002_00000.parquet", shard_dir / "000_00000.parquet"]
    data = prepare([os.pathsep.join(map(str, files))], tmp_path / "out")
    assert [s["path"] for s in data.meta["sources"]] == [str(f) for f in files]
    assert data.documents == 160


def test_an_interrupted_prepare_of_many_shards_resumes_in_the_first_unfinished_file(shard_dir, tmp_path,
                                                                                   monkeypatch):
    straight = prepare([shard_dir], tmp_path / "straight")
    real_encode, seen = ingest._encode, []

    def failing(encoding, batch, fraction):
        seen.append(os.path.basename(batch.source))
        if len(seen) == 7:  # the 3rd of 4 row groups of the 2nd file
            raise KeyboardInterrupt
        return real_encode(encoding, batch, fraction)

    monkeypatch.setattr(ingest, "JOURNAL_INTERVAL", 0.0)
    monkeypatch.setattr(ingest, "_encode", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare([shard_dir], tmp_path / "out", workers=1)
    seen.clear()
    monkeypatch.setattr(ingest, "_encode", lambda *a: (seen.append(os.path.basename(a[1].source)), real_encode(*a))[1])
    resumed = prepare([shard_dir], tmp_path / "out", workers=1)
    assert resumed.meta["resumed"]
    assert seen[0] == "001_00000.parquet" and "000_00000.parquet" not in seen
    assert seen.count("001_00000.parquet") == 2  # its last two row groups: the first two were journalled
    for name in ("train.bin", "val.bin"):
        assert (np.fromfile(resumed.dir / name, np.uint16) == np.fromfile(straight.dir / name, np.uint16)).all()


def test_a_disk_shortfall_names_the_tokens_and_both_sizes(shard_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(prepared_writer.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 20_000})())
    tokens = 80 * (50 + 51 + 52) + 240  # token_count's sum, plus an <|endoftext|> a document
    with pytest.raises(DataError) as caught:
        prepare([shard_dir], tmp_path / "out")
    line = str(caught.value)
    assert f"for {tokens:,} tokens (exact: token_count's sum" in line
    assert f"needs {(tokens * 2 + prepared_writer.DISK_MARGIN) / 1e6:.1f} MB" in line and "0.0 MB free" in line
    assert "\n" not in line and not (tmp_path / "out").exists()
