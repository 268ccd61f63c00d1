"""The batch finder against a faked out-of-memory: the sizes tried, the safety margin, the accumulation."""

from __future__ import annotations

import pytest
import torch

from trainer.plan.batch_finder import find_max_batch, save_user_preset
from trainer.train.oom import is_out_of_memory
from trainer.config import load_preset
from trainer.errors import ConfigError


def fake_step(threshold: int, error=lambda: RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")):
    """A try_step that 'runs out of memory' above `threshold` sequences, recording the sizes it saw."""
    seen: list[int] = []

    def step(b: int) -> None:
        seen.append(b)
        if b > threshold:
            raise error()

    step.seen = seen
    return step


def test_doubling_then_bisection_with_margin_and_accumulation():
    config = load_preset("rtx4070-12gb")  # micro-batch 16 × grad_acc 32 = 512 sequences an iteration
    step = fake_step(20)
    result = find_max_batch(config, step)
    assert step.seen == [1, 2, 4, 8, 16, 32, 24, 20, 22, 21]
    assert result.tried == [(1, True), (2, True), (4, True), (8, True), (16, True), (32, False),
                            (24, False), (20, True), (22, False), (21, False)]
    assert result.largest_fitting == 20
    assert result.batch_size == 18  # 20 less 10%
    assert result.gradient_accumulation_steps == 28  # round(512 / 18)
    assert result.tokens_per_iter == 18 * 1024 * 28
    assert abs(result.tokens_per_iter - config.tokens_per_iter) / config.tokens_per_iter < 0.02
    applied = result.apply(config)
    assert (applied.batch_size, applied.gradient_accumulation_steps) == (18, 28)
    assert not result.hit_limit


def test_torch_out_of_memory_error_and_the_limit():
    config = load_preset("cpu-tiny")
    step = fake_step(100, error=lambda: torch.cuda.OutOfMemoryError("CUDA out of memory"))
    result = find_max_batch(config, step, limit=48)
    assert step.seen == [1, 2, 4, 8, 16, 32, 48]  # the last doubling is capped at the limit
    assert result.largest_fitting == 48 and result.hit_limit
    assert result.batch_size == 43  # floor(48 × 0.9)
    assert result.gradient_accumulation_steps == 1


def test_safety_margin_is_configurable_and_never_below_one():
    config = load_preset("cpu-tiny")
    assert find_max_batch(config, fake_step(1)).batch_size == 1
    assert find_max_batch(config, fake_step(40), safety_margin=0.25).batch_size == 30


def test_nothing_fits_is_one_line():
    with pytest.raises(ConfigError, match="even a micro-batch of 1 runs out of memory"):
        find_max_batch(load_preset("cpu-tiny"), fake_step(0))


def test_other_errors_propagate():
    def broken(b: int) -> None:
        raise ValueError("a bug, not out of memory")

    with pytest.raises(ValueError):
        find_max_batch(load_preset("cpu-tiny"), broken)
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_default_try_step_needs_cuda():
    with pytest.raises(ConfigError, match="CUDA device"):
        find_max_batch(load_preset("cpu-tiny"))


def test_real_steps_on_cpu_fit_a_tiny_model():
    # The default step's machinery on CPU with a tiny model: every size fits up to the limit.
    from trainer.plan.batch_finder import make_try_step

    config = load_preset("cpu-tiny").replace(n_layer=1, n_embd=32, n_head=2, block_size=16)
    result = find_max_batch(config, make_try_step(config, device="cpu"), limit=4)
    assert [b for b, _ in result.tried] == [1, 2, 4] and result.largest_fitting == 4


def test_save_user_preset_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("FWTUI_CONFIG_DIR", str(tmp_path))
    config = load_preset("rtx4070-12gb").replace(batch_size=18, gradient_accumulation_steps=28)
    path = save_user_preset(config, "4070-fitted", description="fitted by the batch finder")
    assert path == tmp_path / "presets" / "4070-fitted.toml"
    loaded = load_preset("4070-fitted")
    assert (loaded.name, loaded.batch_size, loaded.gradient_accumulation_steps) == ("4070-fitted", 18, 28)
    assert loaded.description == "fitted by the batch finder" and loaded.n_embd == 512
    with pytest.raises(ConfigError, match="already exists"):
        save_user_preset(config, "4070-fitted")
    with pytest.raises(ConfigError, match="preset name"):
        save_user_preset(config, "../escape")
