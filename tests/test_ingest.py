"""prepare / count_tokens / open_prepared on small generated parquet: exact tokens, split, cache, bad inputs."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import trainer.data.ingest as ingest
import trainer.data.prepared_writer as prepared_writer
from fwtui.cli import main as cli_main
from trainer.data.dataset import open_prepared
from trainer.errors import ConfigError, DataError
from trainer.observe.events import PrepareProgress
from trainer.data.ingest import is_validation, prepare, resolve_data
from trainer.data.token_count import count_tokens
from trainer.data.prepared_writer import MAX_VAL_SHARE, MIN_VAL_TOKENS
from trainer.data.tokenizer import EOT, get_encoding

from conftest import synthetic_texts, write_fineweb_parquet

SPECIAL_TEXTS = ["a literal <|endoftext|> in a page", "unicode: naïve café 日本語", "NUL \x00 byte", "x" * 3000]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FWTUI_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def documents_tokens(texts):
    encoding = get_encoding()
    return [encoding.encode_ordinary(t) + [EOT] for t in texts]


def read_bin(path):
    return np.fromfile(path, dtype=np.uint16).tolist()


def test_tokens_are_encode_ordinary_plus_eot_split_by_document(tmp_path):
    texts = synthetic_texts(150, words_per_doc=30) + SPECIAL_TEXTS
    path = write_fineweb_parquet(tmp_path / "docs.parquet", texts, row_group_size=37)
    assert pq.ParquetFile(path).metadata.num_row_groups == 5
    one = prepare([path], tmp_path / "one", val_fraction=0.05, workers=1)
    three = prepare([path], tmp_path / "three", val_fraction=0.05, workers=3)

    per_doc = documents_tokens(texts)
    in_val = is_validation(np.arange(len(texts)), 0.05).tolist()
    assert 0 < sum(in_val) < len(texts)
    expected_train = [t for doc, v in zip(per_doc, in_val) if not v for t in doc]
    expected_val = [t for doc, v in zip(per_doc, in_val) if v for t in doc]
    for data in (one, three):
        assert read_bin(data.train_path) == expected_train
        assert read_bin(data.val_path) == expected_val
        assert (data.train_tokens, data.val_tokens, data.documents) == (len(expected_train), len(expected_val),
                                                                        len(texts))
        assert data.meta["splits"]["val"]["documents"] == sum(in_val)
        assert not data.cached
    assert one.meta["tokenizer"]["name"] == "r50k_base"
    assert one.meta["sources"][0]["fingerprint"] and one.meta["sources"][0]["size"] == path.stat().st_size


def test_too_few_documents_for_the_fraction_still_get_one_validation_document(tmp_path):
    texts = synthetic_texts(6, words_per_doc=10)
    assert not is_validation(np.arange(6), 0.0005).any()
    data = prepare([write_fineweb_parquet(tmp_path / "six.parquet", texts)], tmp_path / "out")
    per_doc = documents_tokens(texts)
    assert read_bin(data.val_path) == per_doc[-1]
    assert read_bin(data.train_path) == [t for doc in per_doc[:-1] for t in doc]
    assert data.meta["splits"]["val"]["documents"] == 1


def split_documents(path):
    """A .bin file's documents (lists of tokens, each ending with EOT)."""
    docs, current = [], []
    for token in read_bin(path):
        current.append(token)
        if token == EOT:
            docs.append(current)
            current = []
    assert not current, f"{path} does not end with EOT"
    return docs


def test_small_corpus_val_is_topped_up_with_trailing_train_documents(tmp_path):
    # ~170k tokens: the hash draws ~1 document (0.05%), far below MIN_VAL_TOKENS; 10% of the corpus is above.
    texts = synthetic_texts(1400, words_per_doc=120)
    path = write_fineweb_parquet(tmp_path / "small.parquet", texts, row_group_size=300)
    one = prepare([path], tmp_path / "one", workers=1)
    three = prepare([path], tmp_path / "three", workers=3)
    assert read_bin(one.train_path) == read_bin(three.train_path)
    assert read_bin(one.val_path) == read_bin(three.val_path)

    per_doc = documents_tokens(texts)
    in_val = is_validation(np.arange(len(texts)), 0.0005).tolist()
    hashed_val = [doc for doc, v in zip(per_doc, in_val) if v]
    train_docs = [doc for doc, v in zip(per_doc, in_val) if not v]
    moved = one.meta["split"]["moved_to_val"]["documents"]
    assert moved > 0 and "moved to val" in one.meta["split"]["method"]
    # val = the hash's documents, then the last `moved` train documents, in input order; train = the rest.
    assert split_documents(one.val_path) == hashed_val + train_docs[-moved:]
    assert split_documents(one.train_path) == train_docs[:-moved]
    total = one.train_tokens + one.val_tokens
    assert one.val_tokens >= MIN_VAL_TOKENS and one.val_tokens <= MAX_VAL_SHARE * total
    assert one.val_tokens - len(train_docs[-moved]) < MIN_VAL_TOKENS  # no more documents than needed
    assert one.meta["splits"]["val"] == {"documents": len(hashed_val) + moved, "tokens": one.val_tokens}
    assert one.meta["split"]["moved_to_val"]["tokens"] == sum(len(d) for d in train_docs[-moved:])


def test_the_top_up_finds_documents_across_read_chunks(tmp_path, monkeypatch):
    # Boundaries found 5 tokens at a time must give the same split as 65,536 at a time.
    texts = synthetic_texts(300, words_per_doc=12)
    path = write_fineweb_parquet(tmp_path / "docs.parquet", texts)
    whole = prepare([path], tmp_path / "whole")
    monkeypatch.setattr(prepared_writer, "TAIL_CHUNK_TOKENS", 5)
    chunked = prepare([path], tmp_path / "chunked")
    assert whole.meta["split"]["moved_to_val"]["documents"] > 1
    assert read_bin(chunked.val_path) == read_bin(whole.val_path)
    assert read_bin(chunked.train_path) == read_bin(whole.train_path)


def test_real_text_corpus_gets_enough_validation_for_a_1024_context(shakespeare_parquet, tmp_path):
    # The demo corpus (or $FWTUI_SHAKESPEARE): the hash alone gives it under one document on average.
    data = prepare([shakespeare_parquet], tmp_path / "out")
    total = data.train_tokens + data.val_tokens
    assert data.val_tokens >= min(MIN_VAL_TOKENS, MAX_VAL_SHARE * total)
    assert data.val_tokens > 8 * (1024 + 1), (data.val_tokens, total)  # several full windows at block 1024
    assert data.train_tokens > 0.9 * total - 1
    assert data.meta["split"]["min_val_tokens"] == MIN_VAL_TOKENS


def test_two_documents_split_one_and_one(tmp_path):
    texts = ["the first document of two", "the second document of two"]
    data = prepare([write_fineweb_parquet(tmp_path / "two.parquet", texts)], tmp_path / "out")
    per_doc = documents_tokens(texts)
    assert (read_bin(data.train_path), read_bin(data.val_path)) == (per_doc[0], per_doc[1])


def test_a_hash_that_draws_every_document_for_val_leaves_one_for_train(tmp_path):
    texts = synthetic_texts(3, words_per_doc=10)
    assert is_validation(np.arange(3), 0.999).all()
    data = prepare([write_fineweb_parquet(tmp_path / "three.parquet", texts)], tmp_path / "out", val_fraction=0.999)
    per_doc = documents_tokens(texts)
    assert split_documents(data.val_path) == per_doc[:2] and split_documents(data.train_path) == per_doc[2:]
    assert data.meta["split"]["moved_to_train"] == {"documents": 1, "tokens": len(per_doc[2])}


def test_one_row_is_refused_before_tokenizing(tmp_path, monkeypatch):
    def no_tokenizing(*args):
        raise AssertionError("the tokenizer was loaded for a corpus that cannot be split")

    monkeypatch.setattr(ingest, "get_encoding", no_tokenizing)
    path = write_fineweb_parquet(tmp_path / "one.parquet", ["a single document"])
    with pytest.raises(DataError, match=r"hold 1 row .* at least 2 documents") as err:
        prepare([path], tmp_path / "out")
    assert "\n" not in str(err.value) and str(path.resolve()) in str(err.value)


def test_progress_reports_reach_the_total(tiny_parquet, tmp_path):
    events = []
    data = prepare([tiny_parquet], tmp_path / "out", progress=events.append)
    assert events and all(isinstance(e, PrepareProgress) for e in events)
    last = events[-1]
    assert last.bytes_done == last.bytes_total > 0
    assert last.tokens == data.train_tokens + data.val_tokens
    assert last.documents == data.documents == 200
    assert last.source == str(tiny_parquet.resolve())


def test_cache_hit_then_miss_when_the_file_changes(tmp_path, cache_dir):
    path = write_fineweb_parquet(tmp_path / "docs.parquet", synthetic_texts(40, words_per_doc=20))
    first = prepare([path])
    assert not first.cached and first.dir.parent == cache_dir
    again = prepare([str(path)])
    assert again.cached and again.dir == first.dir and again.train_tokens == first.train_tokens
    assert resolve_data(path).cached and resolve_data(first.dir).dir == first.dir

    write_fineweb_parquet(path, synthetic_texts(40, seed=1, words_per_doc=20))
    changed = prepare([path])
    assert not changed.cached and changed.dir != first.dir
    other_fraction = prepare([path], val_fraction=0.1)
    assert not other_fraction.cached and other_fraction.dir != changed.dir


def test_interrupted_prepare_leaves_nothing_complete_looking_and_resumes(tiny_parquet, tmp_path, monkeypatch):
    straight = prepare([tiny_parquet], tmp_path / "straight", val_fraction=0.05)
    out = tmp_path / "out"
    real_encode, calls = ingest._encode, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user pressed Ctrl-C in the third of four row groups
        return real_encode(*args)

    monkeypatch.setattr(ingest, "JOURNAL_INTERVAL", 0.0)
    monkeypatch.setattr(ingest, "_encode", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare([tiny_parquet], out, val_fraction=0.05, workers=1)
    assert not {"meta.json", "train.bin", "val.bin"} & {p.name for p in out.iterdir()}
    with pytest.raises(DataError, match="not a prepared dataset"):
        open_prepared(out)

    monkeypatch.setattr(ingest, "_encode", real_encode)
    resumed = prepare([tiny_parquet], out, val_fraction=0.05)
    assert resumed.meta["resumed"] and not resumed.cached
    assert read_bin(resumed.train_path) == read_bin(straight.train_path)
    assert read_bin(resumed.val_path) == read_bin(straight.val_path)
    assert resumed.meta["splits"] == straight.meta["splits"]
    assert sorted(p.name for p in out.iterdir()) == [".prepare.lock", "meta.json", "train.bin", "val.bin"]


def test_truncated_bin_is_refused_and_prepared_again(tiny_parquet, tmp_path):
    data = prepare([tiny_parquet], tmp_path / "out")
    with open(data.train_path, "r+b") as f:
        f.truncate(data.train_tokens * 2 - 2)
    with pytest.raises(DataError, match="truncated"):
        open_prepared(data.dir)
    again = prepare([tiny_parquet], tmp_path / "out")
    assert not again.cached and open_prepared(again.dir).train_tokens == data.train_tokens


def test_null_empty_and_whitespace_documents_are_skipped_and_counted(tmp_path):
    texts = ["first real document", None, "", "   \n\t", "second real document", None]
    data = prepare([write_fineweb_parquet(tmp_path / "holes.parquet", texts)], tmp_path / "out")
    assert data.meta["skipped"] == {"null": 2, "empty": 2}
    assert data.documents == 2
    per_doc = documents_tokens(["first real document", "second real document"])
    assert read_bin(data.train_path) + read_bin(data.val_path) == per_doc[0] + per_doc[1]


@pytest.mark.parametrize("kind", ["large_string", "dictionary"])
def test_large_string_and_dictionary_columns_work(tmp_path, kind):
    texts = synthetic_texts(5, words_per_doc=8) * 2
    array = pa.array(texts, pa.large_string()) if kind == "large_string" else pa.array(texts).dictionary_encode()
    path = tmp_path / f"{kind}.parquet"
    pq.write_table(pa.table({"text": array}), path)
    data = prepare([path], tmp_path / "out")
    assert read_bin(data.train_path) + read_bin(data.val_path) == [t for d in documents_tokens(texts) for t in d]


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    raw = pa.array([b"valid text here", b"broken \xff\xfe bytes"], pa.binary()).view(pa.string())
    path = tmp_path / "bad-utf8.parquet"
    pq.write_table(pa.table({"text": raw}), path)
    data = prepare([path], tmp_path / "out")
    assert data.meta["invalid_utf8_replaced"] == 1
    assert data.documents == 2


def bad_file(tmp_path, kind):
    path = tmp_path / f"{kind}.parquet"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "csv":
        path.write_text("text,id\nhello,1\n")
    elif kind == "truncated":
        good = write_fineweb_parquet(tmp_path / "good.parquet", synthetic_texts(20))
        path.write_bytes(good.read_bytes()[:-40])
    elif kind == "no-text-column":
        pq.write_table(pa.table({"content": ["a"], "url": ["u"]}), path)
    elif kind == "int-text":
        pq.write_table(pa.table({"text": pa.array([1, 2], pa.int64())}), path)
    elif kind == "binary-text":
        pq.write_table(pa.table({"text": pa.array([b"a"], pa.binary())}), path)
    elif kind == "corrupted-page":
        good = write_fineweb_parquet(tmp_path / "good.parquet", synthetic_texts(200), row_group_size=50)
        data = bytearray(good.read_bytes())
        offset = pq.ParquetFile(good).metadata.row_group(2).column(0).data_page_offset
        data[offset + 10:offset + 400] = b"\x17" * 390  # garbage over row group 2's first text page
        path.write_bytes(bytes(data))
    elif kind == "zero-rows":
        write_fineweb_parquet(path, [])
    elif kind == "all-null":
        write_fineweb_parquet(path, [None, " "])
    return path


@pytest.mark.parametrize("kind, message", [
    ("empty", r"empty \(0 bytes\), not a parquet file"),
    ("csv", "not a readable parquet file"),
    ("truncated", "not a readable parquet file"),
    ("no-text-column", r"no column 'text' \(columns: content, url; its text columns: content, url\)"),
    ("int-text", "holds int64, not text"),
    ("binary-text", "holds binary, not text"),
    ("corrupted-page", "could not be read at row group 2"),
    ("zero-rows", "hold no rows"),
    ("all-null", r"0 document\(s\) with text \(1 null, 1 empty"),
])
def test_bad_files_get_one_line_naming_the_file(tmp_path, kind, message):
    path = bad_file(tmp_path, kind)
    with pytest.raises(DataError, match=message) as err:
        prepare([path], tmp_path / "out")
    assert "\n" not in str(err.value)
    assert kind in str(err.value) or "no rows" in message


def test_paths_directories_and_globs(tmp_path):
    with pytest.raises(DataError, match="holds no .parquet files"):
        prepare([tmp_path])
    with pytest.raises(DataError, match="does not exist"):
        prepare([tmp_path / "missing.parquet"])
    with pytest.raises(DataError, match="matches no files"):
        prepare([str(tmp_path / "*.parquet")])
    with pytest.raises(ConfigError, match="val_fraction"):
        prepare([tmp_path], val_fraction=0.0)
    shard = tmp_path / "shards"
    shard.mkdir()
    for i in range(2):
        write_fineweb_parquet(shard / f"{i:03d}.parquet", synthetic_texts(10, seed=i, words_per_doc=10))
    by_dir = prepare([shard], tmp_path / "by-dir")
    by_glob = prepare([str(shard / "*.parquet")], tmp_path / "by-glob")
    assert by_dir.documents == by_glob.documents == 20
    assert read_bin(by_dir.train_path) == read_bin(by_glob.train_path)


def test_count_exact_from_token_count_and_estimate_without(tmp_path):
    texts = synthetic_texts(30, words_per_doc=40)
    lengths = [len(t) - 1 for t in documents_tokens(texts)]
    estimate = count_tokens(write_fineweb_parquet(tmp_path / "plain.parquet", texts))
    assert not estimate.exact and estimate.how.startswith("estimate") and "bytes per token" in estimate.how
    assert abs(estimate.tokens - sum(lengths)) <= 0.1 * sum(lengths)

    table = pq.read_table(tmp_path / "plain.parquet").set_column(8, "token_count", pa.array(lengths, pa.int64()))
    pq.write_table(table, tmp_path / "counted.parquet", row_group_size=7)
    exact = count_tokens([tmp_path / "counted.parquet"])
    assert exact.exact and exact.tokens == sum(lengths) and exact.documents == 30
    assert exact.prepared_tokens == prepare([tmp_path / "counted.parquet"], tmp_path / "out").train_tokens + \
        open_prepared(tmp_path / "out").val_tokens


def test_cli_prepare_prints_the_directory_and_counts(tiny_parquet, tmp_path, capsys):
    out = tmp_path / "prepared"
    assert cli_main(["prepare", str(tiny_parquet), "--out", str(out), "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"prepared {out}" in printed and "train.bin" in printed
    assert cli_main(["prepare", str(tiny_parquet), "--count"]) == 0
    assert "estimate" in capsys.readouterr().out


def test_cli_bad_file_is_exit_2_with_one_line(tmp_path, capsys):
    path = bad_file(tmp_path, "csv")
    assert cli_main(["prepare", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fwtui: error: ") and err.count("\n") == 1 and str(path) in err


def test_prepare_writes_nothing_in_cwd(tiny_parquet, tmp_path, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    data = prepare([tiny_parquet])
    assert os.listdir(tmp_path / "cwd") == [] and data.dir.is_dir()


def test_too_little_disk_space_fails_before_writing(tiny_parquet, tmp_path, monkeypatch):
    monkeypatch.setattr(prepared_writer.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    with pytest.raises(DataError, match=r"needs .* MB for ≈ [\d,]+ tokens \(an estimate: .* has 0.0 MB free"):
        prepare([tiny_parquet], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_bin_directory_without_meta_is_not_taken_for_prepared_data(tmp_path):
    (tmp_path / "train.bin").write_bytes(b"\0\0")
    (tmp_path / "val.bin").write_bytes(b"\0\0")
    with pytest.raises(DataError, match="no meta.json"):
        resolve_data(tmp_path)
