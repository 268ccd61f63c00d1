"""The demo corpus: a valid FineWeb-schema parquet built from the standard library's docstrings."""

from __future__ import annotations

import pyarrow.parquet as pq

from trainer.data.demo import build_demo_corpus
from trainer.data.token_count import count_tokens

FINEWEB_COLUMNS = ["text", "id", "dump", "url", "date", "file_path", "language", "language_score", "token_count"]


def test_demo_corpus_is_fineweb_schema_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FWTUI_CACHE_DIR", str(tmp_path / "cache"))
    path = build_demo_corpus()
    assert path.is_relative_to(tmp_path / "cache")
    table = pq.read_table(path)
    assert table.schema.names == FINEWEB_COLUMNS
    assert str(table.schema.field("text").type) == "string"
    assert str(table.schema.field("token_count").type) == "int64"
    texts = table.column("text").to_pylist()
    assert len(texts) > 100 and all(len(t) >= 200 for t in texts)
    assert len(set(table.column("id").to_pylist())) == len(texts)
    assert any(t.startswith("json.dumps\n") for t in texts)
    count = count_tokens(path)  # token_count was filled with the GPT-2 tokenizer: the count is exact
    assert count.exact and count.tokens > 50_000

    mtime = path.stat().st_mtime_ns
    assert build_demo_corpus() == path and path.stat().st_mtime_ns == mtime  # reused, not rebuilt


def test_demo_corpus_is_deterministic(tmp_path):
    first = build_demo_corpus(tmp_path / "a.parquet")
    second = build_demo_corpus(tmp_path / "b.parquet")
    assert first.read_bytes() == second.read_bytes()


def test_demo_corpus_prepares_with_enough_validation_for_block_1024(demo_parquet, tmp_path):
    # The row hash alone gave this corpus one 66-token validation document: too few to evaluate at any preset.
    from trainer.data.ingest import prepare
    from trainer.data.prepared_writer import MIN_VAL_TOKENS

    data = prepare([demo_parquet], tmp_path / "prepared")
    assert data.val_tokens >= MIN_VAL_TOKENS > 1024 + 1
    assert data.meta["split"]["moved_to_val"]["documents"] > 0
    assert data.train_tokens >= 9 * data.val_tokens  # at most a tenth of the corpus held out
