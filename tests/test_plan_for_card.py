"""Plan for a card this machine does not have (`fwtui plan --gpu`, `fwtui presets --gpu`, trainer.plan.target),
against figures worked out here from the memory formula (trainer.plan.memory's docstring, REFERENCE.md 5)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fwtui.cli import main as cli_main
from trainer.config import load_preset
from trainer.errors import ConfigError
from trainer.plan.target import GIB, card_device, find_card, for_card, parse_memory

MIB = 1024**2


def gpt2_params(v: int = 50304, c: int = 768, t: int = 1024, layers: int = 12) -> int:
    """GPT-2 without biases, tied head: wte V·C + wpe T·C + per layer (12·C² + 2·C: attention 4·C², MLP 8·C²,
    two LayerNorm weights) + the final LayerNorm's C."""
    return v * c + t * c + layers * (12 * c * c + 2 * c) + c


def card_memory(b: int, n: int, *, s: int = 1024, h: int = 768, layers: int = 12, v: int = 50304) -> int:
    """bf16 autocast, flash attention, torch.compile: 16·N (weights, gradients, AdamW) + 2·N (bf16 copies)
    + 34·s·b·h a layer + 4·b·s·V (compiled logits), 10% fragmentation, a 400 MiB CUDA context."""
    tensors = 18 * n + layers * 34 * s * b * h + 4 * b * s * v
    return tensors + int(0.10 * tensors) + 400 * MIB


def plan_json(capsys, *argv: str) -> dict:
    assert cli_main(["plan", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_names_as_users_type_them_find_the_table_row():
    assert find_card("RTX 4070").label == "RTX 4070"
    assert find_card("rtx4070 ti").label == "RTX 4070 Ti"
    assert find_card("NVIDIA GeForce RTX 4090").label == "RTX 4090"
    assert find_card("4090").label == "RTX 4090"
    assert find_card("h100").label == "H100 SXM"
    with pytest.raises(ConfigError, match="not in the peak table"):
        find_card("RTX 9999")


def test_memory_sizes_parse_in_gb_and_gib():
    assert parse_memory("12GB") == 12 * 10**9
    assert parse_memory("11.5 GiB") == int(11.5 * GIB)
    assert parse_memory("80") == 80 * 10**9
    with pytest.raises(ConfigError, match="12GB"):
        parse_memory("lots")


def test_a_card_of_the_table_has_its_spec_memory_and_bf16_peak():
    card = card_device("RTX 4070")
    assert (card.device, card.memory_bytes, card.peak_flops, card.bf16) == ("cuda", 12 * GIB, 58.3e12, True)
    assert card.peak_source.startswith("table: RTX 4070")
    with pytest.raises(ConfigError, match="more than one memory size"):
        card_device("A100")
    assert card_device("A100", "40GiB").memory_bytes == 40 * GIB
    custom = card_device(None, "12GB", 50.0)
    assert (custom.memory_bytes, custom.peak_flops) == (12 * 10**9, 50e12)
    assert card_device(None, "12GB").peak_flops is None
    with pytest.raises(ConfigError, match="--gpu-memory"):
        card_device(None)


def test_a_cpu_preset_is_planned_on_the_card():
    assert for_card(dataclasses.replace(load_preset("cpu-tiny"), device="cpu")).device == "cuda"
    assert for_card(load_preset("gpt2-124m")) == load_preset("gpt2-124m")


def test_gpt2_on_an_h100_from_a_cpu_machine(capsys):
    plan = plan_json(capsys, "--preset", "gpt2-124m", "--gpu", "H100")
    n = gpt2_params()
    assert plan["params_with_embeddings"] == n
    assert plan["planned_for"] == "card" and plan["device_name"] == "H100 SXM"
    # The micro-batch fitted to the card (trainer.plan.fit): 60 x 8, not the preset's 12 x 40, same tokens.
    assert plan["est_memory_bytes"] == card_memory(60, n)  # bf16, not fp32 as on a CPU
    assert plan["notes"][1].startswith("micro-batch 60 x 8 accumulation fitted to the H100 SXM")
    kept = plan_json(capsys, "--preset", "gpt2-124m", "--gpu", "H100", "--set", "batch_size=12")
    assert kept["est_memory_bytes"] == card_memory(12, n)
    assert plan["device_memory_bytes"] == 80 * GIB
    largest = max(b for b in range(1, 400) if card_memory(b, n) <= 80 * GIB)
    assert plan["max_fitting_batch"] == largest
    # time: 6·N' + 12·L·H·Q·T FLOPs a token over max_iters × tokens/iter, at 989 TFLOP/s × the 35% default MFU
    flops_per_token = 6 * (n - 1024 * 768) + 12 * 12 * 12 * 64 * 1024
    train_flops = flops_per_token * 491_520 * 600_000
    assert plan["train_seconds"] == pytest.approx(train_flops / (989e12 * 0.35), rel=1e-9)
    assert plan["notes"][0].startswith("planned for the H100 SXM, not this machine")


def test_a_described_card_without_a_peak_has_no_time(capsys):
    plan = plan_json(capsys, "--preset", "rtx4070-12gb", "--gpu-memory", "12GB")
    assert plan["device_memory_bytes"] == 12 * 10**9 and plan["est_seconds"] is None
    assert plan["peak_source"].startswith("unknown")


def test_a_card_that_is_too_small_says_which_batch_fits(capsys):
    plan = plan_json(capsys, "--preset", "80gb", "--gpu", "RTX 4070")
    assert plan["est_memory_bytes"] > 12 * GIB
    assert any("exceeds the device's 12.9 GB" in w for w in plan["warnings"])


def test_probe_is_refused_for_a_card_not_here(capsys):
    assert cli_main(["plan", "--preset", "gpt2-124m", "--gpu", "H100", "--probe"]) == 2
    assert "drop them with --gpu" in capsys.readouterr().err


def test_presets_mark_which_fit_the_card(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")
    assert cli_main(["presets", "--gpu", "RTX 4070"]) == 0
    rows = {line.split("│")[1].strip(): line for line in capsys.readouterr().out.splitlines() if "│" in line}
    assert f"yes ≈ {card_memory(12, gpt2_params()) / 1e9:.1f} GB" in rows["gpt2-124m"]
    assert "no ≈" in rows["80gb"] and "fits" in rows["80gb"]


async def test_setup_screen_plans_for_a_card_of_the_table_with_g(home):
    from tests.setup_helpers import make_app, settle
    from trainer.plan.target import next_card

    first = next_card(None)  # the table's first card with a known memory (RTX 3060, 12 GiB)
    app = make_app(home)  # a CPU machine: no GPU, no fit marks
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.gpus is not None and screen.query_one("#plan").plan is not None)
        assert screen.query_one("#presets").fits == {}
        await pilot.press("g")
        plan_panel, presets = screen.query_one("#plan"), screen.query_one("#presets")
        await settle(pilot, lambda: bool(presets.fits) and plan_panel.plan.device_name == first.name)
        assert plan_panel.plan.device_memory_bytes == first.memory_bytes == 12 * GIB
        assert f"for {first.name} (estimate)" in plan_panel.border_title
        assert presets.fits["80gb"] is False and presets.fits["cpu-tiny"] is True
        await pilot.press("g")
        await settle(pilot, lambda: plan_panel.plan.device_name == next_card(first.name).name)
        screen.plan_for = None
        screen.action_plan_for()  # from this machine back to the first card...
        assert screen.plan_for.name == first.name
