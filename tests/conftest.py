"""Shared test fixtures: the offline tokenizer, and small FineWeb-schema parquet files made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TOKENIZER_FILE = SHARED / "tokenizers" / "r50k_base.tiktoken"
SHAKESPEARE = SHARED / "data" / "shakespeare-fineweb.parquet"

# The GPT-2 ranks cannot be downloaded here: point tiktoken at the shared copy unless CI already did.
if "FWTUI_TOKENIZER_FILE" not in os.environ and TOKENIZER_FILE.is_file():
    os.environ["FWTUI_TOKENIZER_FILE"] = str(TOKENIZER_FILE)


def write_fineweb_parquet(path: Path, texts: list[str | None], row_group_size: int = 50) -> Path:
    """A parquet file in FineWeb's schema (text, id, dump, url, date, file_path, language,
    language_score, token_count) with the given documents, in row groups of `row_group_size` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(texts)
    table = pa.table(
        {
            "text": pa.array(texts, type=pa.string()),
            "id": [f"<urn:uuid:{i:08d}>" for i in range(n)],
            "dump": ["CC-MAIN-2013-20"] * n,
            "url": [f"https://example.com/{i}" for i in range(n)],
            "date": ["2013-05-18T05:48:54Z"] * n,
            "file_path": ["s3://commoncrawl/test.warc.gz"] * n,
            "language": ["en"] * n,
            "language_score": [0.95] * n,
            "token_count": pa.array([None] * n, type=pa.int64()),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size, compression="snappy")
    return path


WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge "
         "boxing matches near the old river bank and every morning bread is baked").split()


def synthetic_texts(n_docs: int, seed: int = 0, words_per_doc: int = 120) -> list[str]:
    """Deterministic English-like documents (a fixed vocabulary, shuffled), for training tests."""
    import random

    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sentence = []
        for _ in range(words_per_doc):
            sentence.append(rng.choice(WORDS))
        docs.append(" ".join(sentence).capitalize() + ".")
    return docs


@pytest.fixture
def tiny_parquet(tmp_path: Path) -> Path:
    """200 synthetic documents (about 25k tokens) in 4 row groups."""
    return write_fineweb_parquet(tmp_path / "tiny.parquet", synthetic_texts(200), row_group_size=50)


@pytest.fixture
def shakespeare_parquet() -> Path:
    if not SHAKESPEARE.is_file():
        pytest.skip("../shared/data/shakespeare-fineweb.parquet is not here")
    return SHAKESPEARE
