"""Every bad ingest and config input of ../shared/docs/RELIABILITY.md ("Bad inputs to try"), headless through
`fwtui prepare` / `fwtui train` (fwtui.cli.main): one line `fwtui: error: ...` naming what is wrong and what
to do, exit status 2, no traceback, nothing lost; and the odd inputs that must simply work (issue 7, item 8).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fwtui.cli import main as cli_main
from tests.conftest import synthetic_texts, write_fineweb_parquet
from trainer.data.dataset import META_NAME, open_prepared
from trainer.errors import ConfigError
from trainer.observe.hardware import DeviceInfo
from trainer.data.ingest import prepare
from trainer.model.precision import precision_for
from trainer.data.tokenizer import EOT

TRAIN = ["max_iters=4", "lr_decay_iters=4", "warmup_iters=1", "eval_interval=2", "eval_iters=1", "log_interval=1",
         "batch_size=2", "block_size=32", "n_layer=1", "n_embd=16"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = cli_main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_one_error_line(rc: int, err: str, pattern: str) -> None:
    import re

    assert rc == 2, err
    assert err.startswith("fwtui: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert re.search(pattern, err), (pattern, err)


def sets(*items: str) -> list[str]:
    return [x for item in items for x in ("--set", item)]


# --- ingest: the inputs that must fail with one line ------------------------------------------------------

def good_parquet(path: Path, n: int = 20, **kw) -> Path:
    return write_fineweb_parquet(path, synthetic_texts(n, words_per_doc=20), **kw)


def make_bad(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.parquet"
    if kind == "zero-bytes":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good_parquet(tmp_path / "good.parquet").read_bytes()[:-100])
    elif kind == "csv-renamed":
        path.write_text("text,id\nhello,1\n")
    elif kind == "json-renamed":
        path.write_text('{"text": "hello"}\n')
    elif kind == "no-text-column":
        pq.write_table(pa.table({"content": ["a document"], "url": ["u"]}), path)
    elif kind == "text-int64":
        pq.write_table(pa.table({"text": pa.array([1, 2], pa.int64())}), path)
    elif kind == "text-binary":
        pq.write_table(pa.table({"text": pa.array([b"a", b"b"], pa.binary())}), path)
    elif kind == "zero-rows":
        write_fineweb_parquet(path, [])
    elif kind == "only-null-empty-whitespace":
        write_fineweb_parquet(path, [None, "", "  \n\t "])
    elif kind == "corrupted-page":
        good = write_fineweb_parquet(tmp_path / "good.parquet", synthetic_texts(200), row_group_size=50)
        data = bytearray(good.read_bytes())
        offset = pq.ParquetFile(good).metadata.row_group(2).column(0).data_page_offset
        data[offset + 10:offset + 400] = b"\x17" * 390
        path.write_bytes(bytes(data))
    elif kind == "schemas-differ-one-without-text":
        path = tmp_path / "shards"
        path.mkdir()
        good_parquet(path / "000.parquet")
        pq.write_table(pa.table({"content": synthetic_texts(5)}), path / "001.parquet")
    elif kind == "directory-without-parquet":
        path = tmp_path / "empty-dir"
        path.mkdir()
        (path / "README.txt").write_text("no shards here")
    elif kind == "nonexistent":
        path = tmp_path / "missing.parquet"
    elif kind == "glob-matching-nothing":
        path = tmp_path / "nothing-*.parquet"
    return path


BAD_INGEST = {
    "zero-bytes": r"zero-bytes\.parquet is empty \(0 bytes\), not a parquet file; re-download or remove it",
    "truncated": r"truncated\.parquet is not a readable parquet file .*; re-download it",
    "csv-renamed": r"csv-renamed\.parquet is not a readable parquet file \(Parquet magic bytes",
    "json-renamed": r"json-renamed\.parquet is not a readable parquet file",
    "no-text-column": r"has no column 'text' \(columns: content, url; its text columns: content, url\); "
                      r"pass --text-column NAME",
    "text-int64": r"column 'text' of .*text-int64\.parquet holds int64, not text; pass --text-column",
    "text-binary": r"column 'text' of .*text-binary\.parquet holds binary, not text",
    "zero-rows": r"the inputs hold no rows \(.*zero-rows\.parquet\); pass parquet files that contain documents",
    "only-null-empty-whitespace": r"0 document\(s\) with text \(1 null, 2 empty or whitespace-only skipped\); "
                                  r"training needs at least 2",
    "corrupted-page": r"corrupted-page\.parquet could not be read at row group 2 .*re-download it",
    "schemas-differ-one-without-text": r"001\.parquet has no column 'text' .*pass --text-column NAME",
    "directory-without-parquet": r"directory .*empty-dir holds no \.parquet files",
    "nonexistent": r"input .*missing\.parquet does not exist",
    "glob-matching-nothing": r"the pattern .*nothing-\*\.parquet matches no files",
}


@pytest.mark.parametrize("kind", sorted(BAD_INGEST))
def test_bad_ingest_input_is_one_line_exit_2_and_nothing_complete_looking(tmp_path, capsys, kind):
    path = make_bad(tmp_path, kind)
    out = tmp_path / "out"
    rc, _, err = cli(capsys, "prepare", path, "--out", out)
    assert_one_error_line(rc, err, BAD_INGEST[kind])
    assert not (out / META_NAME).exists()


@pytest.mark.parametrize("kind", ["csv-renamed", "nonexistent", "only-null-empty-whitespace"])
def test_bad_ingest_input_through_train_is_the_same_one_line(tmp_path, capsys, monkeypatch, kind):
    monkeypatch.setenv("FWTUI_CACHE_DIR", str(tmp_path / "cache"))
    path = make_bad(tmp_path, kind)
    rc, _, err = cli(capsys, "train", "--preset", "cpu-tiny", "--data", path, "--out", tmp_path / "run",
                     *sets(*TRAIN))
    assert_one_error_line(rc, err, BAD_INGEST[kind])
    assert not (tmp_path / "run" / "ckpt.pt").exists()


# --- ingest: the odd inputs that must work ----------------------------------------------------------------

def read_tokens(data) -> np.ndarray:
    return np.concatenate([np.fromfile(data.train_path, np.uint16), np.fromfile(data.val_path, np.uint16)])


def test_large_string_dictionary_and_differing_schemas_in_one_prepare_work(tmp_path, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    texts = synthetic_texts(12, words_per_doc=15)
    write_fineweb_parquet(shards / "000-fineweb.parquet", texts[:4])
    pq.write_table(pa.table({"text": pa.array(texts[4:8], pa.large_string()), "score": [1.0] * 4}),
                   shards / "001-large-string.parquet")
    pq.write_table(pa.table({"url": ["u"] * 4, "text": pa.array(texts[8:]).dictionary_encode()}),
                   shards / "002-dictionary.parquet")
    rc, out, err = cli(capsys, "prepare", shards, "--out", tmp_path / "out")
    assert rc == 0 and err == "", err
    data = open_prepared(tmp_path / "out")
    assert data.documents == 12 and int((read_tokens(data) == EOT).sum()) == 12


def test_null_empty_and_whitespace_documents_are_skipped_and_counted_headless(tmp_path, capsys):
    path = write_fineweb_parquet(tmp_path / "holes.parquet", ["a real document", None, "", " \t\n", "another one"])
    rc, out, _ = cli(capsys, "prepare", path, "--out", tmp_path / "out")
    assert rc == 0 and "skipped: 1 null, 2 empty or whitespace-only documents" in out
    assert open_prepared(tmp_path / "out").documents == 2


def test_nul_bytes_and_a_literal_endoftext_are_ordinary_text(tmp_path, capsys):
    docs = ["before\x00after, a NUL inside", "a document quoting <|endoftext|> as text", "plain"]
    rc, _, err = cli(capsys, "prepare", write_fineweb_parquet(tmp_path / "odd.parquet", docs), "--out",
                     tmp_path / "out")
    assert rc == 0, err
    tokens = read_tokens(open_prepared(tmp_path / "out"))
    assert int((tokens == EOT).sum()) == 3  # one per document: the quoted one is encoded as plain text


@pytest.mark.parametrize("char", ["a", "^"])
def test_a_million_character_run_without_spaces_works(tmp_path, capsys, char):
    path = write_fineweb_parquet(tmp_path / "long.parquet", [char * 10**6, "a short second document"])
    t0 = time.perf_counter()
    rc, _, err = cli(capsys, "prepare", path, "--out", tmp_path / "out")
    print(f"{char!r} * 10**6 prepared in {time.perf_counter() - t0:.2f} s")  # a figure, not an assertion
    assert rc == 0, err
    assert open_prepared(tmp_path / "out").train_tokens > 10**5


def test_thousands_of_tiny_row_groups_work(tmp_path, capsys):
    texts = synthetic_texts(3000, words_per_doc=3)
    path = write_fineweb_parquet(tmp_path / "tiny-groups.parquet", texts, row_group_size=1)
    assert pq.ParquetFile(path).metadata.num_row_groups == 3000
    rc, _, err = cli(capsys, "prepare", path, "--out", tmp_path / "out")
    assert rc == 0, err
    assert open_prepared(tmp_path / "out").documents == 3000


# --- config: the values that must fail with one line ----------------------------------------------------

BAD_CONFIG = {
    "lr_decay_iters=-1": r"lr_decay_iters = -1: must be 0 or more",  # lr_decay_iters <= warmup_iters only warns
    "eval_interval=0": r"eval_interval = 0: must be a positive integer",
    "batch_size=0": r"batch_size = 0: must be a positive integer",
    "batch_size=-4": r"batch_size = -4: must be a positive integer",
    "block_size=0": r"block_size = 0: must be a positive integer",
    "gradient_accumulation_steps=0": r"gradient_accumulation_steps = 0: must be a positive integer",
    "block_size=5000": r"the val split holds \d+ tokens, not more than block_size \+ 1 \(5001\); use more data, "
                       r"a larger val_fraction, or a smaller --set block_size",
    "n_embd=17": r"n_embd = 17: must be divisible by n_head \(2\); try 16",
    "vocab_size=1000": r"vocab_size = 1000: must hold GPT-2's 50257 tokens",
    "learning_rate=nan": r"learning_rate = nan: must be a finite number",
    "learning_rate=inf": r"learning_rate = inf: must be a finite number",
    "min_lr=nan": r"min_lr = nan: must be a finite number",
    "dropout=nan": r"dropout = nan: must be at least 0 and below 1",
    "grad_clip=inf": r"grad_clip = inf: must be a finite number",
    "learning_rate=1e9": r"learning_rate = 1000000000.0: must be above 0 and at most 1",
    "dropout=1.0": r"dropout = 1.0: must be at least 0 and below 1",
    "weight_decay=-0.1": r"weight_decay = -0.1: must be a finite number, 0 or more",
    'batch_size="32"': r"batch_size = '32': expected a whole number \(no quotes\)",
    "max_iters=inf": r"max_iters = inf: expected a whole number",
    "batch_sise=4": r"unknown key 'batch_sise'; did you mean 'batch_size'\?",
    "learning_rate==1e-3": r"learning_rate = '=1e-3': expected a number",
    "no-equals-sign": r"--set 'no-equals-sign': expected key=value",
    "dtype=bf16": r"dtype = 'bf16': must be \"auto\", \"bfloat16\", \"float16\" or \"float32\"",
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("inputs-data")
    parquet = write_fineweb_parquet(base / "corpus.parquet", synthetic_texts(200), row_group_size=50)
    return prepare([parquet], base / "prepared", val_fraction=0.1).dir


@pytest.mark.parametrize("override", sorted(BAD_CONFIG))
def test_bad_config_value_is_one_line_exit_2(prepared, tmp_path, capsys, override):
    rc, _, err = cli(capsys, "train", "--preset", "cpu-tiny", "--data", prepared, "--out", tmp_path / "run",
                     *sets(*TRAIN, override))
    assert_one_error_line(rc, err, BAD_CONFIG[override])
    assert not (tmp_path / "run" / "ckpt.pt").exists()


def test_nan_in_a_preset_file_is_one_line_naming_the_file(prepared, tmp_path, capsys):
    preset = tmp_path / "mine.toml"
    preset.write_text("n_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 32\nlearning_rate = nan\n")
    rc, _, err = cli(capsys, "train", "--preset", preset, "--data", prepared, "--out", tmp_path / "run")
    assert_one_error_line(rc, err, rf"{preset}: learning_rate = nan: must be a finite number")


def test_a_value_containing_equals_and_bf16_on_cpu_work(prepared, tmp_path, capsys):
    run = tmp_path / "run"
    rc, out, err = cli(capsys, "train", "--preset", "cpu-tiny", "--data", prepared, "--out", run,
                       *sets(*TRAIN, "name=lr=2e-3,bs=2", "dtype=bfloat16"))
    assert rc == 0, err
    assert 'name = "lr=2e-3,bs=2"' in (run / "config.toml").read_text()
    assert "· bfloat16 ·" in out and "completed at iter 4" in out  # CPU autocast runs bf16


def test_bf16_on_a_cuda_card_without_it_is_one_clear_line():
    card = DeviceInfo("cuda:0", "Tesla T4", 16 << 30, 65e12, "table", bf16=False)
    with pytest.raises(ConfigError, match=r"the Tesla T4 has no bfloat16 support; use --set dtype=float16 or "
                                          r"dtype=auto") as err:
        precision_for("bfloat16", card)
    assert "\n" not in str(err.value)
    assert precision_for("auto", card) == "float16"


# --- config against an existing run: refused, and the run is left exactly as it was ------------------------

@pytest.fixture(scope="module")
def finished_run(prepared, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("inputs-run") / "run"
    assert cli_main(["train", "--preset", "cpu-tiny", "--data", str(prepared), "--out", str(run),
                     *sets(*TRAIN)]) == 0
    return run


@pytest.fixture
def other_data(tmp_path) -> Path:
    parquet = write_fineweb_parquet(tmp_path / "other.parquet", synthetic_texts(200, seed=9), row_group_size=50)
    return prepare([parquet], tmp_path / "other-prepared", val_fraction=0.1).dir


RESUME_REFUSALS = {
    "another-shape": (["--resume", *sets("n_embd=32")],
                      r"the checkpoint's model has n_embd = 16 but the config says 32; resume with the run's own "
                      r"shape \(drop that --set\) or use a new --out"),
    "max-iters-below-the-step": (["--resume", *sets("max_iters=3")],
                                 r"the checkpoint is at iter 4 and max_iters is 3: nothing left to train; raise it"),
    "other-data": (["--resume", "--data", "OTHER", *sets("max_iters=8")],
                   r"the run trained on other data \(\w+ .*\); pass the run's own --data .* or use a new "
                   r"--out"),
    "a-new-run-into-it": (["--preset", "cpu-tiny", "--data", "OTHER", *sets(*TRAIN)],
                          r"already holds a run \(ckpt\.pt\); add --resume to continue it, or pass another --out"),
}


@pytest.mark.parametrize("case", sorted(RESUME_REFUSALS))
def test_a_refused_resume_or_reuse_changes_nothing_in_the_run(finished_run, other_data, tmp_path, capsys, case):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "events.jsonl"}
    args, pattern = RESUME_REFUSALS[case]
    args = [str(other_data) if a == "OTHER" else a for a in args]
    rc, _, err = cli(capsys, "train", "--out", run, *args)
    assert_one_error_line(rc, err, pattern)
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "events.jsonl"}
    assert after == before  # config.toml and the checkpoints exactly as they were
    rc, out, err = cli(capsys, "train", "--out", run, "--resume", *sets("max_iters=5"))  # still resumable
    assert rc == 0 and "resuming at iter 4" in out and "completed at iter 5" in out, err


def test_resume_with_no_checkpoint_or_no_out_is_one_line(tmp_path, capsys):
    rc, _, err = cli(capsys, "train", "--preset", "cpu-tiny", "--out", tmp_path / "empty", "--resume")
    assert_one_error_line(rc, err, r"--resume: no checkpoint in .*empty; train it first, or drop --resume")
    rc, _, err = cli(capsys, "train", "--preset", "cpu-tiny", "--resume")
    assert_one_error_line(rc, err, r"--resume needs --out RUN")
