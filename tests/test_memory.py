"""The VRAM estimate (trainer.plan.memory): its terms, its growth with batch and block, the largest batch that fits."""

from __future__ import annotations

import pytest

from trainer.config import load_preset
from trainer.model.formulas import count_params, figures_for, flops_per_token
from trainer.plan.memory import (CUDA_CONTEXT_BYTES, accumulation_for, estimate_memory, largest_fitting_batch)


@pytest.fixture
def gpt2():
    return load_preset("24gb-large")  # 12/12/768, block 1024, micro-batch 32


def test_terms_sum_to_total_and_optimizer_is_16_bytes_per_param(gpt2):
    est = estimate_memory(gpt2)
    assert sum(est.breakdown.values()) == est.total_bytes
    assert est.total_bytes - est.allocator_bytes == CUDA_CONTEXT_BYTES
    n = count_params(gpt2).total
    b = est.breakdown
    assert b["weights"] + b["gradients"] + b["optimizer"] == 16 * n
    assert b["autocast_weights"] == 2 * n
    # flash attention, bf16: 34·s·b·h per layer
    assert b["activations"] == gpt2.n_layer * 34 * 1024 * 32 * 768
    assert b["logits"] == 4 * 32 * 1024 * 50304  # compiled: bf16 logits + bf16 gradient
    assert est.flash_attention and est.compiled and est.precision == "bfloat16"


def test_eager_logits_cost_more_than_compiled(gpt2):
    eager = estimate_memory(gpt2.replace(compile=False))
    compiled = estimate_memory(gpt2)
    assert eager.breakdown["logits"] == 14 * 32 * 1024 * 50304
    assert eager.total_bytes > compiled.total_bytes


def test_without_flash_attention_the_scores_are_added(gpt2):
    cpu = estimate_memory(gpt2, on_cuda=False)
    assert not cpu.flash_attention and cpu.precision == "float32" and cpu.breakdown["cuda_context"] == 0
    per_layer_fp32 = 2 * (34 * 1024 * 32 * 768 + 5 * 12 * 1024 * 1024 * 32)
    assert cpu.breakdown["activations"] == 12 * per_layer_fp32
    fp16_math = estimate_memory(gpt2.replace(dtype="float32"), on_cuda=True)
    assert not fp16_math.flash_attention  # fp32 on CUDA: no flash kernel


def test_memory_grows_with_batch_and_block(gpt2):
    by_batch = [estimate_memory(gpt2, batch_size=b).total_bytes for b in (1, 2, 8, 32)]
    assert by_batch == sorted(by_batch) and len(set(by_batch)) == 4
    by_block = [estimate_memory(gpt2.replace(block_size=t)).total_bytes for t in (128, 256, 512, 1024)]
    assert by_block == sorted(by_block) and len(set(by_block)) == 4


def test_largest_fitting_batch_is_the_boundary(gpt2):
    memory = 12 * 1024**3
    b = largest_fitting_batch(gpt2, memory)
    assert b >= 1
    assert estimate_memory(gpt2, batch_size=b).total_bytes <= memory
    assert estimate_memory(gpt2, batch_size=b + 1).total_bytes > memory
    assert largest_fitting_batch(gpt2, 1024**3) == 0  # 1 GB: the weights and optimizer alone do not fit


def test_accumulation_keeps_the_tokens_per_iteration(gpt2):
    assert accumulation_for(gpt2, 16) == 32  # 32 × 16 sequences = 16 × 32
    assert accumulation_for(gpt2, 8) * 8 * 1024 == gpt2.tokens_per_iter
    assert accumulation_for(gpt2, 1000) == 1


def test_the_per_parameter_terms_are_the_config_figures(gpt2):
    figures = figures_for(gpt2)
    handed = estimate_memory(gpt2, figures=figures)
    assert handed == estimate_memory(gpt2)  # handing the figures in changes nothing but who counts
    n = count_params(gpt2).total
    assert figures.params == count_params(gpt2) and figures.flops_per_token == flops_per_token(gpt2)
    assert (figures.weight_bytes, figures.gradient_bytes, figures.optimizer_bytes) == (4 * n, 4 * n, 8 * n)
    assert handed.breakdown["weights"] == figures.weight_bytes
    assert handed.breakdown["autocast_weights"] == figures.autocast_copy_bytes == 2 * n
    assert largest_fitting_batch(gpt2, 12 * 1024**3, figures=figures) == largest_fitting_batch(gpt2, 12 * 1024**3)


def test_muons_step_copies_count_where_they_outgrow_the_backward_peak():
    # MuonWithAdamW's sync-free skip on a GPU updates copies of each group's weights and state: at a small
    # micro-batch those outlive nothing bigger, and the estimate must hold them.
    from trainer.config import apply_overrides
    from trainer.plan.memory import SKIP_COPY_BYTES_ADAMW, SKIP_COPY_BYTES_MUON

    modern = apply_overrides(load_preset("gpt2-124m"), ["recipe=modern"])  # as gpu_check's modern-124m
    params = figures_for(modern).params
    assert params.muon > 0
    small = estimate_memory(modern, batch_size=1, on_cuda=True)
    copies = max(SKIP_COPY_BYTES_MUON * params.muon, SKIP_COPY_BYTES_ADAMW * (params.total - params.muon))
    assert small.breakdown["optimizer_step"] == copies - small.breakdown["activations"] - small.breakdown["logits"] > 0
    assert sum(v for k, v in small.breakdown.items()) == small.total_bytes
    assert estimate_memory(modern, batch_size=32, on_cuda=True).breakdown["optimizer_step"] == 0  # under the backward's
    assert estimate_memory(modern, batch_size=1, on_cuda=False).breakdown["optimizer_step"] == 0  # CPU: no copies
    nanogpt = load_preset("gpt2-124m")
    assert estimate_memory(nanogpt, batch_size=1, on_cuda=True).breakdown["optimizer_step"] == 0  # fused AdamW
