"""nanoGPT checkpoints against a reference GPT-2 forward pass written here from the architecture's definition.

Nothing in this file's reference uses fwtui's modules: `reference_logits` is GPT-2 as nanoGPT's model.py
defines it, in torch functional ops on a plain dict of tensors with nanoGPT's state_dict names; the
checkpoint is random tensors under those names. fwtui's loader must turn that checkpoint into a model whose
logits are the reference's, and fwtui's own state_dict must be exactly what the reference consumes.

The architecture (nanoGPT model.py, REFERENCE.md section 7): x = wte[idx] + wpe[pos]; per block
x += attn(ln_1(x)), x += mlp(ln_2(x)) (pre-LN); attention: c_attn (C -> 3C) split into q, k, v of nh heads,
softmax(q·kᵀ / sqrt(hs)) under a causal mask, heads concatenated, c_proj (C -> C); MLP: c_fc (C -> 4C),
GELU, c_proj (4C -> C); ln_f; logits = x · wteᵀ (lm_head tied to wte, no bias). nn.Linear weights are
(out, in). LayerNorm eps 1e-5, bias optional everywhere (`bias`). nanoGPT's GELU is `nn.GELU()`, the exact
(erf) form, not GPT-2's tanh approximation: the test below shows the two differ by more than the tolerance,
so a model with the wrong one fails here.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.errors import CheckpointError
from trainer.model.gpt import GPT, ModelArgs
from trainer.train.from_checkpoint import load_model

SHAPE = dict(n_layer=2, n_head=4, n_embd=32, block_size=16, vocab_size=96)
TOLERANCE = dict(rtol=1e-5, atol=1e-5)  # float32: the two forward passes differ only in summation order


# --- the reference -------------------------------------------------------------------------------------------

def reference_shapes(n_layer: int, n_head: int, n_embd: int, block_size: int, vocab_size: int,
                     bias: bool) -> dict[str, tuple[int, ...]]:
    """Every tensor a nanoGPT GPT holds, by its state_dict name (n_head fixes no shape, only the split)."""
    C = n_embd
    shapes: dict[str, tuple[int, ...]] = {"transformer.wte.weight": (vocab_size, C),
                                          "transformer.wpe.weight": (block_size, C),
                                          "transformer.ln_f.weight": (C,),
                                          "lm_head.weight": (vocab_size, C)}
    linear = {"attn.c_attn": (3 * C, C), "attn.c_proj": (C, C), "mlp.c_fc": (4 * C, C), "mlp.c_proj": (C, 4 * C)}
    for i in range(n_layer):
        for norm in ("ln_1", "ln_2"):
            shapes[f"transformer.h.{i}.{norm}.weight"] = (C,)
            if bias:
                shapes[f"transformer.h.{i}.{norm}.bias"] = (C,)
        for name, (out, inp) in linear.items():
            shapes[f"transformer.h.{i}.{name}.weight"] = (out, inp)  # nn.Linear: (out, in)
            if bias:
                shapes[f"transformer.h.{i}.{name}.bias"] = (out,)
    if bias:
        shapes["transformer.ln_f.bias"] = (C,)
    return shapes


def _layer_norm(x, w, b):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    y = (x - mean) / torch.sqrt(var + 1e-5)
    return y * w + (b if b is not None else 0)


def _linear(x, w, b):
    return x @ w.T + (b if b is not None else 0)


def reference_logits(state: dict[str, torch.Tensor], idx: torch.Tensor, n_head: int,
                     gelu=lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))) -> torch.Tensor:
    """(B, T, V) logits of nanoGPT's GPT for token ids idx (B, T), from its state dict alone."""
    get = state.get
    n_layer = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("transformer.h."))
    B, T = idx.shape
    x = state["transformer.wte.weight"][idx] + state["transformer.wpe.weight"][:T]  # (B, T, C)
    C = x.shape[-1]
    hs = C // n_head
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        h = _layer_norm(x, state[p + "ln_1.weight"], get(p + "ln_1.bias"))
        qkv = _linear(h, state[p + "attn.c_attn.weight"], get(p + "attn.c_attn.bias"))  # (B, T, 3C)
        q, k, v = (t.reshape(B, T, n_head, hs).transpose(1, 2) for t in qkv.split(C, dim=-1))  # (B, nh, T, hs)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, T)
        scores = scores.masked_fill(~causal, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + _linear(y, state[p + "attn.c_proj.weight"], get(p + "attn.c_proj.bias"))
        h = _layer_norm(x, state[p + "ln_2.weight"], get(p + "ln_2.bias"))
        h = gelu(_linear(h, state[p + "mlp.c_fc.weight"], get(p + "mlp.c_fc.bias")))
        x = x + _linear(h, state[p + "mlp.c_proj.weight"], get(p + "mlp.c_proj.bias"))
    x = _layer_norm(x, state["transformer.ln_f.weight"], get("transformer.ln_f.bias"))
    return x @ state["lm_head.weight"].T  # (B, T, V)


def random_nanogpt_state(bias: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under nanoGPT's names; lm_head.weight is the very wte tensor, as nanoGPT saves it.
    LayerNorm gains and biases are random too, so a loader that drops or swaps one is caught."""
    g = torch.Generator().manual_seed(seed)

    def draw(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        noise = torch.randn(shape, generator=g)
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            return 1 + 0.5 * noise  # gains around 1
        return noise * (0.3 if len(shape) == 2 else 0.5)  # matrices small enough that softmax is not one-hot

    state = {name: draw(name, shape) for name, shape in reference_shapes(bias=bias, **SHAPE).items()}
    state["lm_head.weight"] = state["transformer.wte.weight"]
    return state


def nanogpt_checkpoint(state: dict[str, torch.Tensor], bias: bool, *, compiled_prefix: bool,
                       old_mask_buffer: bool = False) -> dict:
    """A ckpt.pt dict as nanoGPT's train.py writes it (model, optimizer, model_args, iter_num, ...)."""
    state = dict(state)
    if old_mask_buffer:  # nanoGPT before flash attention kept the causal mask as a buffer named attn.bias
        T = SHAPE["block_size"]
        for i in range(SHAPE["n_layer"]):
            state[f"transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
    if compiled_prefix:  # train.py saves the compiled module's state dict: every key behind _orig_mod.
        state = {f"_orig_mod.{k}": v for k, v in state.items()}
    return {"model": state, "optimizer": {"state": {}, "param_groups": []},
            "model_args": {**SHAPE, "bias": bias, "dropout": 0.0}, "iter_num": 5000,
            "best_val_loss": torch.tensor(3.31),
            "config": {"out_dir": "out-fineweb", "batch_size": 12, "compile": True, "dataset": "fineweb"}}


# --- the tests -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("bias", "prefix", "old_buffer"), [(False, True, False), (True, False, True),
                                                            (True, True, False), (False, False, False)])
def test_a_nanogpt_checkpoint_gives_the_reference_logits(tmp_path, bias, prefix, old_buffer):
    state = random_nanogpt_state(bias, seed=int(bias) + 2 * int(prefix))
    torch.save(nanogpt_checkpoint(state, bias, compiled_prefix=prefix, old_mask_buffer=old_buffer),
               tmp_path / "ckpt.pt")
    model, ckpt = load_model(tmp_path)  # a run directory holding nanoGPT's ckpt.pt
    assert ckpt["iter_num"] == 5000 and ckpt["config"]["dataset"] == "fineweb"
    assert model.lm_head.weight is model.transformer.wte.weight  # the tie survives loading
    idx = torch.randint(0, SHAPE["vocab_size"], (3, SHAPE["block_size"]), generator=torch.Generator().manual_seed(7))
    expected = reference_logits(state, idx, SHAPE["n_head"])
    with torch.no_grad():
        logits, loss = model(idx, idx)  # with targets: logits at every position
    torch.testing.assert_close(logits, expected, **TOLERANCE)
    reference_loss = F.cross_entropy(expected.reshape(-1, expected.shape[-1]), idx.reshape(-1))
    torch.testing.assert_close(loss, reference_loss, **TOLERANCE)


def test_the_comparison_can_fail():
    # The tolerance tells nanoGPT's exact GELU from GPT-2's tanh one, and a model off by one LayerNorm gain.
    state = random_nanogpt_state(bias=True)
    idx = torch.randint(0, SHAPE["vocab_size"], (2, SHAPE["block_size"]), generator=torch.Generator().manual_seed(1))
    exact = reference_logits(state, idx, SHAPE["n_head"])
    tanh = reference_logits(state, idx, SHAPE["n_head"], gelu=lambda x: F.gelu(x, approximate="tanh"))
    assert not torch.allclose(exact, tanh, **TOLERANCE)
    nudged = dict(state, **{"transformer.h.1.ln_2.weight": state["transformer.h.1.ln_2.weight"] * 1.001})
    assert not torch.allclose(exact, reference_logits(nudged, idx, SHAPE["n_head"]), **TOLERANCE)


@pytest.mark.parametrize("bias", [False, True])
def test_fwtuis_state_dict_is_exactly_what_the_reference_consumes(bias):
    model = GPT(ModelArgs(**SHAPE, bias=bias))
    ours = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert ours == reference_shapes(bias=bias, **SHAPE)
    # And its logits are the reference's on its own weights: fwtui's checkpoints run in nanoGPT.
    model.eval()
    idx = torch.randint(0, SHAPE["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits, _ = model(idx, idx)
    torch.testing.assert_close(logits, reference_logits(model.state_dict(), idx, SHAPE["n_head"]), **TOLERANCE)


def test_mismatched_weights_are_reported_clearly(tmp_path):
    ckpt = nanogpt_checkpoint(random_nanogpt_state(bias=False), False, compiled_prefix=False)
    ckpt["model_args"]["n_embd"] = 64  # the weights are 32 wide
    del ckpt["model"]["transformer.h.1.mlp.c_fc.weight"]
    ckpt["model"]["transformer.h.0.attn.rotary.weight"] = torch.zeros(3)
    torch.save(ckpt, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "ckpt.pt")
    message = str(err.value)
    assert "\n" not in message
    assert "missing 1 (transformer.h.1.mlp.c_fc.weight)" in message
    assert "unexpected 1 (transformer.h.0.attn.rotary.weight)" in message
    assert "wrong shape" in message and "(96, 32) vs (96, 64)" in message
