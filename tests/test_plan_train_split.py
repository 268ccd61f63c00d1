"""The plan's epochs divide by the training split, as the run does (RunStarted.dataset_tokens = train.bin's
tokens), not by train + val: exact once the cache holds the prepared data, an estimate ("≈") before."""

from __future__ import annotations

import json

from fwtui.cli import main
from fwtui.screens.setup_plan import plan_for
from fwtui.screens.token_counts import TokenCounts
from tests.conftest import synthetic_texts, write_fineweb_parquet
from trainer.config import load_preset
from trainer.data.ingest import prepare
from trainer.data.token_count import count_tokens
from trainer.data.train_split import expected_val_tokens


def planned(capsys, data) -> dict:
    assert main(["plan", "--preset", "cpu-tiny", "--set", "device=cpu", "--data", str(data), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_counts_the_training_split_the_run_divides_by(home, capsys) -> None:
    data = write_fineweb_parquet(home / "shard.parquet", synthetic_texts(300), row_group_size=50)
    count = count_tokens([data])
    before = planned(capsys, data)
    held_out = expected_val_tokens(count.prepared_tokens, 0.0005)
    assert held_out > 0
    assert before["dataset_tokens"] == count.prepared_tokens - held_out  # not train + val
    assert before["dataset_tokens_exact"] is False  # the split is an estimate until prepared
    prepared = prepare([data])  # what `fwtui train` does first (the cache under XDG_CACHE_HOME)
    after = planned(capsys, data)
    assert after["dataset_tokens"] == prepared.train_tokens  # exactly what RunStarted.dataset_tokens will say
    assert after["dataset_tokens_exact"] is True
    assert prepared.train_tokens + prepared.val_tokens == count.prepared_tokens
    tiny = load_preset("cpu-tiny")
    assert after["epochs"] == tiny.tokens_per_iter * tiny.max_iters / prepared.train_tokens
    # the estimate was close: the top-up moves whole documents past the target
    assert abs(before["dataset_tokens"] - prepared.train_tokens) < 0.05 * prepared.train_tokens


def test_the_setup_screens_plan_uses_the_same_split(home) -> None:
    data = write_fineweb_parquet(home / "shard.parquet", synthetic_texts(300), row_group_size=50)
    prepared = prepare([data])
    config = load_preset("cpu-tiny")
    plan, note = plan_for(config, str(data), None, token_counts=TokenCounts(), peak_tflops=None, runs_dir=None,
                          cancelled=lambda: False)
    assert note == "" and plan.dataset_tokens == prepared.train_tokens and plan.dataset_tokens_exact
