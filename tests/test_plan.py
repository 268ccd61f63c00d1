"""The planner (trainer.plan.planner): the figures for each seed preset, epoch and size warnings, time sources."""

from __future__ import annotations

import json
import sys

import pytest

from trainer.config import load_preset
from trainer.observe.events import RunStarted, Step
from trainer.model import formulas
from trainer.model.formulas import format_count
from trainer.plan.planner import make_plan, size_claim_warnings
from trainer.observe.runlog import EventLogWriter

# REFERENCE.md section 3 (rounded as nanoGPT prints them) and section 2 (tokens per iteration).
SEED_PRESETS = {
    "24gb-large": ("123.59M", 32 * 1024 * 16),
    "80gb": ("123.59M", 64 * 1024 * 8),
    "gpt2-124m": ("123.59M", 12 * 1024 * 40),
    "rtx4070-12gb": ("63.52M", 16 * 1024 * 32),
    "rtx4070-12gb-long": ("63.52M", 12 * 1024 * 40),
    "24gb": ("81.36M", 32 * 1024 * 16),
    "48gb": ("98.85M", 32 * 1024 * 16),
    "16gb": ("50.93M", 32 * 1024 * 12),
    "rtx4070-12gb-small": ("29.94M", 16 * 1024 * 32),
    "lt16gb": ("29.94M", 24 * 1024 * 20),
}


def exact_params(layers: int, d: int, vocab: int = 50304) -> int:
    """nanoGPT's count with bias False: 12·d² per layer + 2 LayerNorms per layer + ln_f + the tied embedding."""
    return layers * (12 * d * d + 2 * d) + d + vocab * d


@pytest.mark.parametrize("name", sorted(SEED_PRESETS))
def test_seed_preset_figures(name):
    config = load_preset(name)
    shown, tokens_per_iter = SEED_PRESETS[name]
    plan = make_plan(config)
    assert plan.params == exact_params(config.n_layer, config.n_embd)
    assert format_count(plan.params) == shown
    assert abs(plan.params - float(shown[:-1]) * 1e6) < 5e3
    assert plan.params_with_embeddings == plan.params + 1024 * config.n_embd
    assert plan.tokens_per_iter == tokens_per_iter
    # no shipped preset claims a wrong size (their descriptions quote the seeds' figures with the correction)
    assert size_claim_warnings(config) == []


def test_flops_formula_for_gpt2_small():
    config = load_preset("gpt2-124m")
    plan = make_plan(config)
    # 6·N + 12·L·H·Q·T = 6 × 123,587,328 + 12·12·12·64·1024 ≈ 855M FLOPs a token
    assert plan.flops_per_token == 6 * 123_587_328 + 12 * 12 * 12 * 64 * 1024 == 854_770_176
    assert plan.train_flops == plan.flops_per_token * 491_520 * 600_000
    evals = 600_000 // 2000 + 1
    assert plan.eval_count == evals
    assert plan.eval_flops == pytest.approx(evals * 2 * 200 * 12 * 1024 * plan.flops_per_token / 3)
    assert plan.hellaswag_count == 600_000 // 2500  # and at max_iters, a multiple of 2,500
    assert plan.total_flops == pytest.approx(plan.train_flops + plan.eval_flops + plan.hellaswag_flops)


def test_one_plan_counts_the_parameters_once(monkeypatch, tmp_path):
    """figures_for counts them; the size check, FLOPs, checkpoints, memory model and batch search reuse it."""
    calls = []
    original = formulas.count_params

    def counting(config):
        calls.append(config.name)
        return original(config)

    # Wherever a trainer module holds the function (imported by name or called through formulas), count it.
    for name, module in list(sys.modules.items()):
        if name.startswith("trainer") and getattr(module, "count_params", None) is original:
            monkeypatch.setattr(module, "count_params", counting)
    config = load_preset("gpt2-124m")
    plan = make_plan(config, dataset_tokens=10**9, device_name="NVIDIA GeForce RTX 4070",
                     device_memory_bytes=12 * 1024**3, runs_dir=tmp_path)
    assert plan.max_fitting_batch  # the batch search ran (it used to recount at every size it tried)
    assert calls == [config.name]
    assert (plan.params, plan.params_with_embeddings) == (original(config).nanogpt, original(config).total)
    figures = formulas.figures_for(config)  # a caller that has the figures hands them in: no count at all
    calls.clear()
    assert make_plan(config, figures=figures, device_memory_bytes=12 * 1024**3).params == plan.params
    assert calls == []
    assert plan.checkpoint_bytes == figures.checkpoint_bytes == 12 * plan.params_with_embeddings


def test_epochs_and_their_warnings():
    config = load_preset("rtx4070-12gb")  # 6000 iterations × 524,288 tokens = 3.15B tokens
    run_tokens = 6000 * 524_288
    ok = make_plan(config, dataset_tokens=run_tokens // 2, dataset_tokens_exact=True)
    assert ok.epochs == pytest.approx(2.0) and ok.warnings == []
    many = make_plan(config, dataset_tokens=run_tokens // 12, dataset_tokens_exact=True)
    assert many.epochs == pytest.approx(12.0, rel=1e-3)
    assert any("sees each token 12.0 times" in w for w in many.warnings)
    few = make_plan(config, dataset_tokens=run_tokens * 5, dataset_tokens_exact=False)
    assert not few.dataset_tokens_exact
    assert any("only ≈ 20% of the dataset is seen" in w for w in few.warnings)
    unknown = make_plan(config)
    assert unknown.dataset_tokens is None and unknown.epochs is None


def test_size_claims_in_name_and_description():
    config = load_preset("rtx4070-12gb").replace(name="gpt2-125m", description="")
    warnings = size_claim_warnings(config)
    assert len(warnings) == 1
    assert warnings[0].startswith("name says 125m but the model has 63.52M parameters (nanoGPT count")
    claimed = load_preset("rtx4070-12gb").replace(description="a ~125M model for 12 GB cards")
    assert size_claim_warnings(claimed)[0].startswith("description says ~125M but the model has 63.52M")
    honest = load_preset("gpt2-124m").replace(name="my-124m", description="GPT-2 124M, ~491k tokens/iter")
    assert size_claim_warnings(honest) == []  # 124M is within 10% of 123.59M; "491k" is not a size
    tokens = load_preset("gpt2-124m").replace(description="trained on 10B tokens")
    assert size_claim_warnings(tokens) == []


def test_time_from_the_table_default_and_energy():
    config = load_preset("gpt2-124m")
    plan = make_plan(config, device_name="NVIDIA H100 80GB HBM3", price_per_kwh=0.25)
    assert plan.peak_flops == 989e12 and plan.expected_mfu == 0.35
    assert "datacenter" in plan.expected_mfu_source
    achieved = 989e12 * 0.35
    assert plan.train_seconds == pytest.approx(plan.train_flops / achieved)
    assert plan.est_seconds == pytest.approx(plan.total_flops / achieved + plan.checkpoint_seconds)
    assert plan.checkpoint_seconds == pytest.approx(plan.checkpoint_count * 12 * 124_373_760 / 1e9)
    assert plan.energy_kwh == pytest.approx(700 * plan.est_seconds / 3.6e6)
    assert plan.cost == pytest.approx(plan.energy_kwh * 0.25)
    geforce = make_plan(config, device_name="NVIDIA GeForce RTX 4090")
    assert geforce.expected_mfu == 0.30
    eager = make_plan(config.replace(compile=False), device_name="NVIDIA GeForce RTX 4090")
    assert eager.expected_mfu == pytest.approx(0.30 * 135 / 250)


def test_hellaswag_scorings_are_in_the_flops_and_the_time():
    """16gb scores 2,000 examples every 1,000 iterations and at the end: the plan counts them, forward only,
    over the measured 360.5 padded positions an example, and adds their time to the total."""
    config = load_preset("16gb")
    assert (config.hellaswag_interval, config.hellaswag_limit) == (1000, 2000)
    plan = make_plan(config, device_name="NVIDIA H100 80GB HBM3")
    scorings = config.max_iters // 1000 + (1 if config.max_iters % 1000 else 0)
    assert plan.hellaswag_count == scorings and plan.hellaswag_examples == 2000
    assert plan.hellaswag_flops == pytest.approx(scorings * 2000 * 360.5 * plan.flops_per_token / 3)
    assert plan.total_flops == pytest.approx(plan.train_flops + plan.eval_flops + plan.hellaswag_flops)
    achieved = plan.peak_flops * plan.expected_mfu
    assert plan.hellaswag_seconds == pytest.approx(plan.hellaswag_flops / achieved)
    assert plan.est_seconds == pytest.approx(plan.total_flops / achieved + plan.checkpoint_seconds)
    assert any(n.startswith(f"HellaSwag: {scorings} × 2,000 examples") for n in plan.notes)
    off = make_plan(config.replace(hellaswag_interval=0), device_name="NVIDIA H100 80GB HBM3")
    assert (off.hellaswag_count, off.hellaswag_flops, off.hellaswag_seconds) == (0, 0.0, 0.0)
    assert off.est_seconds == pytest.approx(plan.est_seconds - plan.hellaswag_seconds)


def test_unknown_peak_gives_unknown_time():
    config = load_preset("cpu-tiny")
    plan = make_plan(config, device_name="CPU: Some Processor")
    assert plan.est_seconds is None and plan.expected_mfu is None and plan.energy_kwh is None
    assert plan.expected_mfu_source.startswith("unknown")
    odd = make_plan(load_preset("24gb"), device_name="Mystery GPU 9000")
    assert odd.peak_flops is None and odd.est_seconds is None  # never the A100's peak
    given = make_plan(load_preset("24gb"), device_name="Mystery GPU 9000", peak_flops=100e12,
                      peak_source="measured bf16 matmul")
    assert given.peak_source == "measured bf16 matmul" and given.est_seconds is not None


def _earlier_run(runs, name, config, device, mfu, tokens_per_sec, flops_per_token=1000, precision="bfloat16",
                 compiled=True):
    """An events.jsonl as a finished run of `config` on `device` writes it: 10 warm-up steps far off, then 30."""
    sink = EventLogWriter(runs / name)
    sink(RunStarted(run_dir=str(runs / name), config=config.to_dict(), params=1, params_with_embeddings=1,
                    device="cuda:0", device_name=device, device_memory_bytes=None, peak_flops=None,
                    peak_flops_source="", flops_per_token=flops_per_token, tokens_per_iter=1, dataset_tokens=1,
                    start_iter=0, max_iters=100, precision=precision, compiled=compiled))
    for i in range(0, 40):
        warm = i < 10  # compile and warm-up: far off, must be skipped
        sink(Step(iter=i, loss=3.0, lr=1e-3, step_seconds=1.0, tokens_per_sec=1.0 if warm else tokens_per_sec,
                  mfu=0.01 if warm else mfu, mem_allocated_bytes=None, mem_reserved_bytes=None,
                  mem_peak_bytes=None, mem_total_bytes=None, tokens_seen=i, epoch=0.0, elapsed_seconds=i,
                  eta_seconds=None))
    sink.close()


def test_expected_mfu_from_earlier_runs(tmp_path):
    device = "NVIDIA GeForce RTX 4070"
    preset = load_preset("rtx4070-12gb")
    for i, mfu in enumerate((0.40, 0.42, 0.44)):
        _earlier_run(tmp_path, f"r{i}", preset, device, mfu, 1000.0)
    _earlier_run(tmp_path, "other-device", preset, "NVIDIA GeForce RTX 4090", 0.9, 1000.0)
    _earlier_run(tmp_path, "other-preset", load_preset("24gb"), device, 0.9, 1000.0)
    _earlier_run(tmp_path, "fp32", preset, device, 0.9, 1000.0, precision="float32")
    _earlier_run(tmp_path, "eager", preset, device, 0.9, 1000.0, compiled=False)
    plan = make_plan(preset, device_name=device, runs_dir=tmp_path)
    assert plan.expected_mfu == pytest.approx(0.42)
    assert plan.expected_mfu_source.startswith("from 3 earlier runs of this model and batch shape")
    fresh = make_plan(preset, device_name=device, runs_dir=tmp_path / "none")
    assert fresh.expected_mfu == 0.30


def test_runs_with_other_overrides_do_not_feed_each_other(tmp_path):
    # Two runs of one preset, one with --set n_layer=2: each plan sees only its own shape's run.
    device = "NVIDIA GeForce RTX 4070"
    preset = load_preset("rtx4070-12gb")
    deeper = preset.replace(n_layer=preset.n_layer * 2)
    _earlier_run(tmp_path, "plain", preset, device, 0.40, 1000.0)
    _earlier_run(tmp_path, "deeper", deeper, device, 0.20, 1000.0)
    assert deeper.name == preset.name  # the override keeps the preset's name: names cannot tell them apart
    plain_plan = make_plan(preset, device_name=device, runs_dir=tmp_path)
    deeper_plan = make_plan(deeper, device_name=device, runs_dir=tmp_path)
    assert plain_plan.expected_mfu == pytest.approx(0.40)
    assert deeper_plan.expected_mfu == pytest.approx(0.20)
    assert plain_plan.expected_mfu_source.startswith("from 1 earlier run ")
    other_batch = preset.replace(batch_size=preset.batch_size // 2,
                                 gradient_accumulation_steps=preset.gradient_accumulation_steps * 2)
    assert make_plan(other_batch, device_name=device, runs_dir=tmp_path).expected_mfu == 0.30  # the default


def test_cpu_time_from_measured_tokens_per_second(tmp_path):
    cpu = "CPU: Some Processor"
    _earlier_run(tmp_path, "r0", load_preset("cpu-tiny"), cpu, None, 5000.0, flops_per_token=2_000_000,
                 precision="float32", compiled=False)
    plan = make_plan(load_preset("cpu-tiny"), device_name=cpu, runs_dir=tmp_path)
    achieved = 5000.0 * 2_000_000
    assert plan.expected_mfu is None and "measured" in plan.expected_mfu_source
    assert plan.train_seconds == pytest.approx(plan.train_flops / achieved)


def test_plan_holds_an_fp32_cuda_run_to_the_tf32_peak():
    h100 = "NVIDIA H100 80GB HBM3"
    bf16 = make_plan(load_preset("gpt2-124m"), device_name=h100)
    fp32 = make_plan(load_preset("gpt2-124m").replace(dtype="float32"), device_name=h100)
    assert bf16.peak_flops == pytest.approx(989e12) and bf16.peak_source.startswith("table: H100 SXM")
    assert fp32.peak_flops == pytest.approx(989e12 / 2)
    assert fp32.peak_source.startswith("TF32 = 0.5 × bf16 peak; table: H100 SXM")
    assert fp32.train_seconds == pytest.approx(2 * bf16.train_seconds)  # same MFU, half the peak
    cpu = make_plan(load_preset("cpu-tiny"), device_name="CPU: Some Processor")
    assert cpu.peak_flops is None and cpu.peak_source.startswith("unknown")


def test_plan_for_a_card_without_bf16_plans_fp16():
    plan = make_plan(load_preset("gpt2-124m"), device_name="NVIDIA A100-SXM4-80GB", bf16_supported=False)
    assert "memory: float16" in " ".join(plan.notes)
    assert plan.peak_flops == pytest.approx(312e12)  # fp16 runs on the same tensor-core rate as bf16


def test_memory_warning_names_the_batch_that_fits():
    config = load_preset("24gb-large")
    plan = make_plan(config, device_name="NVIDIA GeForce RTX 4070", device_memory_bytes=12 * 1024**3)
    assert plan.est_memory_bytes > 12 * 1024**3
    assert plan.max_fitting_batch is not None and 1 <= plan.max_fitting_batch < 32
    warning = next(w for w in plan.warnings if w.startswith("memory"))
    assert f"largest micro-batch that fits is ≈ {plan.max_fitting_batch}" in warning
    roomy = make_plan(config, device_name="NVIDIA H100 80GB HBM3", device_memory_bytes=80 * 1024**3)
    assert not any(w.startswith("memory") for w in roomy.warnings)


def test_plan_is_json():
    plan = make_plan(load_preset("cpu-tiny"), dataset_tokens=1000, device_name="NVIDIA H100 PCIe",
                     device_memory_bytes=80 * 1024**3)
    data = json.loads(json.dumps(plan.to_dict()))
    for key in ("params", "params_with_embeddings", "tokens_per_iter", "dataset_tokens", "dataset_tokens_exact",
                "epochs", "total_flops", "est_seconds", "est_memory_bytes", "device_memory_bytes", "warnings"):
        assert key in data
    assert isinstance(data["warnings"], list)


# --- `fwtui plan` -----------------------------------------------------------------------------------------

JSON_KEYS = ("params", "params_with_embeddings", "tokens_per_iter", "dataset_tokens", "dataset_tokens_exact",
             "epochs", "total_flops", "est_seconds", "est_memory_bytes", "device_memory_bytes", "warnings")


def _prepared_dir(path, train_tokens, val_tokens=10):
    from trainer.data.dataset import write_meta

    path.mkdir()
    (path / "train.bin").write_bytes(b"\0" * 2 * train_tokens)
    (path / "val.bin").write_bytes(b"\0" * 2 * val_tokens)
    write_meta(path, {"splits": {"train": {"tokens": train_tokens, "documents": 3},
                                 "val": {"tokens": val_tokens, "documents": 1}}})
    return path


def test_cli_json_has_the_keys(capsys):
    from fwtui.cli import main

    assert main(["plan", "--preset", "cpu-tiny", "--set", "device=cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in JSON_KEYS:
        assert key in data
    assert data["params"] == make_plan(load_preset("cpu-tiny")).params
    assert data["tokens_per_iter"] == 8 * 128
    assert data["dataset_tokens"] is None and data["epochs"] is None
    assert isinstance(data["warnings"], list)


def test_cli_json_with_prepared_data(tmp_path, capsys):
    from fwtui.cli import main

    data_dir = _prepared_dir(tmp_path / "prepared", train_tokens=10_000)
    assert main(["plan", "--preset", "cpu-tiny", "--set", "device=cpu", "--data", str(data_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dataset_tokens"] == 10_000 and data["dataset_tokens_exact"] is True
    assert data["epochs"] == pytest.approx(200 * 1024 / 10_000)
    assert any("sees each token 20.5 times" in w for w in data["warnings"])


def test_cli_human_output_and_errors(capsys):
    from fwtui.cli import main

    assert main(["plan", "--preset", "cpu-tiny", "--set", "device=cpu", "--peak-tflops", "1"]) == 0
    out = capsys.readouterr().out
    assert "fwtui plan · cpu-tiny" in out and "3.32M (nanoGPT count)" in out and "1,024" in out
    assert main(["plan", "--preset", "cpu-tiny", "--set", "device=cpu", "--probe"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fwtui: error: --probe") and "CUDA" in err and "\n" not in err
    assert main(["plan", "--preset", "cpu-tiny", "--save-preset", "x"]) == 2
    assert "add --probe" in capsys.readouterr().err
    assert main(["plan", "--json"]) == 2
    assert "--preset" in capsys.readouterr().err


def test_cli_counts_parquet_tokens(tmp_path, capsys):
    from fwtui.cli import main
    from tests.conftest import synthetic_texts, write_fineweb_parquet

    parquet = write_fineweb_parquet(tmp_path / "tiny.parquet", synthetic_texts(50))
    assert main(["plan", "--preset", "cpu-tiny", "--set", "device=cpu", "--data", str(parquet), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dataset_tokens"] > 50 * 100 and data["dataset_tokens_exact"] is False  # no token_count: estimate
    assert data["dataset_source"].startswith("estimate")
    assert main(["plan", "--preset", "cpu-tiny", "--data", str(tmp_path / "missing.parquet")]) == 2
    assert "--data" in capsys.readouterr().err


def test_presets_table_shows_the_figures_of_each_preset(capsys, monkeypatch):
    """`fwtui presets`: the counts come from figures_for, the same numbers the plan shows."""
    import argparse

    from fwtui.commands import presets

    monkeypatch.setenv("COLUMNS", "200")  # rich would elide the columns at 80
    assert presets.main(argparse.Namespace(keys=False)) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if " gpt2-124m " in line)
    plan = make_plan(load_preset("gpt2-124m"))
    assert format_count(plan.params) in row and format_count(plan.params_with_embeddings) in row
    assert f"{plan.tokens_per_iter:,}" in row
