"""The micro-batch that fits the card (trainer.plan.fit): on a big card the default micro-batch is the largest
the memory model allows, the tokens per iteration kept; the user's --set, a resume and the CPU keep theirs;
the plan and the run say the choice in one line."""

from __future__ import annotations

import json

import pytest

from trainer.config import load_preset
from trainer.observe.hardware import DeviceInfo
from trainer.plan.fit import FIT_FRACTION, MAX_FITTED_TOKENS, fit_to_card, fitted_micro_batch
from trainer.plan.memory import estimate_memory
from trainer.runs.launch import RunRequest, fit_batch

H100 = 80 * 10**9


def test_gpt2_124m_on_an_80_gb_card_takes_the_largest_fitting_micro_batch_same_tokens():
    config = load_preset("gpt2-124m")  # 12 x 40 = 480 sequences of 1024
    fitted, line = fit_to_card(config, H100, card="the H100")
    b = fitted.batch_size
    assert b > config.batch_size and 480 % b == 0
    assert fitted.tokens_per_iter == config.tokens_per_iter and fitted.gradient_accumulation_steps == 480 // b
    assert estimate_memory(fitted, on_cuda=True).total_bytes <= FIT_FRACTION * H100
    assert b * config.block_size <= MAX_FITTED_TOKENS
    larger = [d for d in range(b + 1, 481) if 480 % d == 0][0]  # the next size that keeps the tokens
    assert (larger * 1024 > MAX_FITTED_TOKENS
            or estimate_memory(config, batch_size=larger, on_cuda=True).total_bytes > FIT_FRACTION * H100)
    assert line is not None and "\n" not in line and f"micro-batch {b} x {480 // b}" in line
    assert "the preset's 12 x 40" in line and "491,520 tokens" in line


def test_the_users_batch_a_small_card_and_several_ranks_are_respected():
    config = load_preset("gpt2-124m")
    assert fit_to_card(config, H100, overrides=["batch_size=12"]) == (config, None)
    assert fit_to_card(config, H100, overrides=["gradient_accumulation_steps=40"]) == (config, None)
    assert fit_to_card(config, 12 * 10**9) == (config, None)  # nothing larger fits: unchanged, nothing said
    assert fit_to_card(config, None) == (config, None)
    b = fitted_micro_batch(config, H100, world_size=8)
    assert (480 // b) % 8 == 0  # each of 8 ranks runs a whole share of the accumulation


def _info(cuda: bool) -> DeviceInfo:
    return DeviceInfo(device="cuda" if cuda else "cpu", name="NVIDIA H100 80GB HBM3" if cuda else "CPU",
                      memory_bytes=H100 if cuda else None, peak_flops=None, peak_source="test", bf16=True)


def test_a_new_run_on_cuda_is_fitted_a_resume_and_the_cpu_are_not(monkeypatch):
    import trainer.observe.hardware as hardware

    config = load_preset("gpt2-124m")
    monkeypatch.setattr(hardware, "detect_device", lambda device, peak=None: _info(True))
    fitted, line = fit_batch(RunRequest(preset="gpt2-124m", data=None), config, 1)
    assert fitted.batch_size > 12 and "the NVIDIA H100 80GB HBM3 (80.0 GB)" in line
    assert fit_batch(RunRequest(preset="gpt2-124m", data=None, resume=True), config, 1) == (config, None)
    monkeypatch.setattr(hardware, "detect_device", lambda device, peak=None: _info(False))
    assert fit_batch(RunRequest(preset="gpt2-124m", data=None), config, 1) == (config, None)


def test_the_plan_for_an_h100_says_the_fitted_micro_batch(capsys):
    from fwtui.cli import main

    assert main(["plan", "--preset", "gpt2-124m", "--gpu", "H100", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["tokens_per_iter"] == 491_520
    assert any(note.startswith("micro-batch ") and "fitted to the" in note for note in plan["notes"])
