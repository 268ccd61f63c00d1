"""The GPT: causal, nanoGPT's parameter names and counts, GPT-2 initialisation. nanoGPT checkpoints load:
tests/test_nanogpt_compat.py, against a reference forward pass written from the architecture."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.config import RunConfig
from trainer.model.formulas import count_params, format_count
from trainer.model.gpt import GPT, ModelArgs

TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=50304)


def tiny(seed: int = 0, **over) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelArgs(**{**TINY, **over})).eval()


@pytest.mark.parametrize("bias", [False, True])
def test_changing_a_later_token_never_changes_earlier_logits(bias):
    # A small vocabulary keeps the full (T, T, V) logits cheap; causality does not depend on V.
    model = tiny(bias=bias, vocab_size=512)
    T = 32
    idx = torch.randint(0, 512, (1, T), generator=torch.Generator().manual_seed(1))
    changed = idx.repeat(T, 1)  # row t: the same sequence with token t replaced
    changed[torch.arange(T), torch.arange(T)] = (idx[0] + 1 + torch.arange(T)) % 512
    with torch.no_grad():
        base, _ = model(idx, idx)  # with targets: logits for every position, (1, T, V)
        logits, _ = model(changed, changed)  # (T, T, V)
    for t in range(T):
        # Positions before t see the same tokens: their logits must not move (a leak moves them ~1e-3).
        torch.testing.assert_close(logits[t, :t], base[0, :t], rtol=0, atol=1e-5)
        # And position t itself does see its own token (the test would pass for a constant model).
        assert not torch.allclose(logits[t, t], base[0, t])


def test_forward_without_targets_gives_the_last_positions_logits():
    model = tiny()
    idx = torch.randint(0, 50257, (3, 20))
    with torch.no_grad():
        full, loss = model(idx, idx)
        last, none = model(idx)
    assert none is None and loss is not None
    assert last.shape == (3, 1, 50304)
    torch.testing.assert_close(last[:, 0], full[:, -1])


def test_a_sequence_longer_than_the_block_is_refused():
    with pytest.raises(ValueError, match="block_size 32"):
        tiny()(torch.zeros((1, 33), dtype=torch.long))


@pytest.mark.parametrize(
    "shape",
    [dict(n_layer=2, n_head=2, n_embd=32, block_size=32, bias=False),
     dict(n_layer=2, n_head=2, n_embd=32, block_size=32, bias=True),
     dict(n_layer=3, n_head=4, n_embd=48, block_size=64, bias=True),
     dict(n_layer=1, n_head=1, n_embd=16, block_size=16, bias=False, vocab_size=50257),
     dict(n_layer=6, n_head=6, n_embd=384, block_size=1024, bias=False)],
)
def test_parameter_count_equals_the_formula(shape):
    config = RunConfig(**shape)
    model = GPT(ModelArgs.from_dict(shape))
    counted = count_params(config)
    assert model.num_params() == counted.nanogpt
    assert model.num_params(non_embedding=False) == counted.total
    assert sum(p.numel() for p in model.parameters()) == counted.total  # the tied head is counted once


@pytest.mark.parametrize(
    "layers, heads, d, printed",
    [(12, 12, 768, "123.59M"), (12, 8, 512, "63.52M"), (12, 6, 384, "40.56M"), (10, 10, 640, "81.36M"),
     (12, 12, 672, "98.85M"), (8, 8, 512, "50.93M"), (6, 6, 384, "29.94M")],
)
def test_formula_reproduces_nanogpts_printed_counts(layers, heads, d, printed):
    # REFERENCE.md section 3: what nanoGPT prints as "number of parameters" for vocab 50304, bias False.
    config = RunConfig(n_layer=layers, n_head=heads, n_embd=d, block_size=1024)
    assert format_count(count_params(config).nanogpt) == printed


def nanogpt_names(n_layer: int, bias: bool) -> set[str]:
    """nanoGPT's state dict keys, written out by hand from its model.py (REFERENCE.md section 7)."""
    names = {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "lm_head.weight"}
    if bias:
        names.add("transformer.ln_f.bias")
    for i in range(n_layer):
        for part in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            names.add(f"transformer.h.{i}.{part}.weight")
            if bias:
                names.add(f"transformer.h.{i}.{part}.bias")
    return names


@pytest.mark.parametrize("bias", [False, True])
def test_state_dict_keys_are_nanogpts(bias):
    assert set(tiny(bias=bias).state_dict()) == nanogpt_names(2, bias)


def test_head_is_tied_to_the_token_embedding():
    model = tiny()
    assert model.lm_head.weight is model.transformer.wte.weight


def test_gpt2_initialisation():
    n_layer = 4
    torch.manual_seed(0)
    model = GPT(ModelArgs(n_layer=n_layer, n_head=4, n_embd=128, block_size=64, bias=True))
    residual = 0.02 / math.sqrt(2 * n_layer)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):  # residual projections: scaled down by 1/sqrt(2L)
            assert p.std().item() == pytest.approx(residual, rel=0.08), name
        elif name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert p.std().item() == pytest.approx(0.02, rel=0.08), name
        elif name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
            assert torch.all(p == 1), name
        elif name.endswith(".bias"):
            assert torch.all(p == 0), name


def test_weight_decay_only_on_tensors_of_two_or_more_dims():
    model = tiny(bias=True)
    decay, no_decay = model.optimizer_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
