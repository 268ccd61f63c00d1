"""Shared test fixtures: small FineWeb-schema parquet files made on the fly, a real-text corpus, and a
synthetic prepared directory for the tiny model. Nothing here needs ../shared: the GPT-2 ranks ship with
the package (trainer/data/assets) and the real-text corpus falls back to the demo corpus."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from trainer.data.dataset import PreparedData

from trainer.data.tokenizer import SHIPPED_FILE as TOKENIZER_FILE  # noqa: E402,F401 - the ranks the tests use

SHAKESPEARE_VAR = "FWTUI_SHAKESPEARE"
"""Where .ci/run points at ../shared/data/shakespeare-fineweb.parquet when a clone has it beside it."""


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


def write_pattern_dataset(directory: Path) -> PreparedData:
    """A prepared directory of token ids below 256 (train 20,000, val 2,000): a repeating pattern with 10%
    seeded noise. A model with vocabulary 256 learns it in a few CPU steps, so loop and fault tests run the
    real Trainer in milliseconds without a tokenizer or a prepare."""
    import numpy as np

    from trainer.data.dataset import open_prepared, write_meta

    rng = np.random.default_rng(0)
    counts = {}
    for split, n in (("train", 20_000), ("val", 2_000)):
        tokens = (np.arange(n) * 7 % 61).astype(np.uint16)
        noise = rng.random(n) < 0.1
        tokens[noise] = rng.integers(0, 256, noise.sum())
        tokens.tofile(directory / f"{split}.bin")
        counts[split] = {"tokens": n, "documents": 1}
    write_meta(directory, {"splits": counts, "tokenizer": {"name": "synthetic", "sha256": "0" * 64}})
    return open_prepared(directory)


@pytest.fixture(scope="module")
def pattern_data(tmp_path_factory) -> PreparedData:
    """write_pattern_dataset in a fresh directory, made once per test module."""
    return write_pattern_dataset(tmp_path_factory.mktemp("prepared"))


@pytest.fixture
def tiny_parquet(tmp_path: Path) -> Path:
    """200 synthetic documents (about 25k tokens) in 4 row groups."""
    return write_fineweb_parquet(tmp_path / "tiny.parquet", synthetic_texts(200), row_group_size=50)


@pytest.fixture(scope="session")
def demo_parquet(tmp_path_factory) -> Path:
    """The demo corpus (trainer/data/demo.py: the stdlib's docstrings, ~1,600 documents), built once a session."""
    from trainer.data.demo import build_demo_corpus

    return build_demo_corpus(tmp_path_factory.mktemp("demo") / "demo.parquet")


@pytest.fixture(scope="session")
def shakespeare_parquet(tmp_path_factory) -> Path:
    """A small real-text corpus: $FWTUI_SHAKESPEARE (686 documents, 1,563,594 tokens) when set, else the demo
    corpus, which is real English text in FineWeb's schema too, so a test of real text runs in any clone."""
    if os.environ.get(SHAKESPEARE_VAR):
        path = Path(os.environ[SHAKESPEARE_VAR]).expanduser()
        if not path.is_file():
            pytest.fail(f"{SHAKESPEARE_VAR}={path} is not a file; unset it or point it at the parquet")
        return path
    from trainer.data.demo import build_demo_corpus

    return build_demo_corpus(tmp_path_factory.mktemp("real-text") / "demo.parquet")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """For the app tests: a private cwd, state dir (recent files) and config dir (no user presets)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("FWTUI_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path
