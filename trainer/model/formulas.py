"""Closed-form figures from a config alone (no torch): parameter counts, training FLOPs per token, and the
bytes of the weights, gradients and optimizer state.

`figures_for(config)` computes them once into a frozen `ModelFigures`, which the planner, the memory model,
the preset table and the Trainer (its MFU meter and RunStarted) are handed instead of each recounting, so
every screen shows the same number for the same config and a plan counts the parameters once.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer.config import RunConfig


@dataclass(frozen=True, slots=True)
class ParamCount:
    nanogpt: int
    """nanoGPT's `get_num_params()`: every parameter except the position embedding (the head is tied)."""
    total: int
    """Every parameter, position embedding included."""
    untied_head: int = 0
    """The head's own V x C weights when `untied_head` is on (0 when tied), inside `nanogpt` and `total`."""
    muon: int = 0
    """The blocks' 2-D matrices, which Muon trains when `muon` is on (0 when AdamW trains everything)."""


def count_params(config: RunConfig) -> ParamCount:
    """Exact parameter count of our GPT for this config (vocab padded): nanoGPT's for recipe "nanogpt"; the
    modern recipe's switches change it as the model does (RMSNorm: a weight, no bias; rotary: no position
    table; untied head: V x C more)."""
    d, b = config.n_embd, int(config.bias)
    norm = d if config.rms_norm else d + b * d  # weight, plus bias when bias is on (LayerNorm only)
    attention = 3 * d * d + b * 3 * d + d * d + b * d  # c_attn (d -> 3d), c_proj (d -> d)
    mlp = 4 * d * d + b * 4 * d + 4 * d * d + b * d  # c_fc (d -> 4d), c_proj (4d -> d)
    per_layer = 2 * norm + attention + mlp
    token_embedding = config.vocab_size * d  # shared with lm_head (weight tying) unless untied_head
    untied_head = config.vocab_size * d if config.untied_head else 0
    position_embedding = 0 if config.rotary else config.block_size * d
    nanogpt = config.n_layer * per_layer + norm + token_embedding + untied_head  # + ln_f
    matrices = config.n_layer * (3 * d * d + d * d + 8 * d * d)  # c_attn, attn c_proj, c_fc, mlp c_proj
    return ParamCount(nanogpt=nanogpt, total=nanogpt + position_embedding, untied_head=untied_head,
                      muon=matrices if config.muon else 0)


def flops_per_token(config: RunConfig, params: ParamCount | None = None) -> int:
    """Training FLOPs per token, forward and backward: 6·N + 12·L·H·Q·T (PaLM appendix B, as nanoGPT's
    estimate_mfu).

    N is nanoGPT's parameter count (`params` when the caller has counted them, else counted here), L layers,
    H heads, Q head dimension, T block size.

    The modern recipe's terms: an untied head adds no FLOPs a token
    against a tied one (N counts the tied V x C matrix once, for the head's matmul; the embedding lookup is
    free either way), so N leaves out `untied_head`; ReLU² runs the same two matmuls as GELU; rotary angles,
    QK-norm, RMSNorm and the logit cap are elementwise, O(T·C) against the matmuls' O(T·C²): negligible, not
    counted (as nanoGPT leaves out LayerNorm and GELU).
    """
    counted = params if params is not None else count_params(config)
    n = counted.nanogpt - counted.untied_head
    return 6 * n + 12 * config.n_layer * config.n_head * config.head_dim * config.block_size


# Bytes a parameter takes in training state (REFERENCE.md section 5); every trained parameter, the position
# embedding included, has all of them.
BYTES_PER_PARAM_WEIGHTS = 4  # fp32 master weights
BYTES_PER_PARAM_GRADS = 4  # fp32 gradients
BYTES_PER_PARAM_ADAMW = 8  # exp_avg + exp_avg_sq, fp32
BYTES_PER_PARAM_MUON = 4  # Muon's one momentum buffer, fp32 (the Newton–Schulz temporaries are bf16, one matrix)
BYTES_PER_PARAM_AUTOCAST_COPY = 2  # bf16/fp16 weight copies kept for backward under 16-bit autocast


@dataclass(frozen=True, slots=True)
class ModelFigures:
    """A config's derived figures, computed once by `figures_for` and handed on (never recomputed)."""

    params: ParamCount
    """nanoGPT's count (`params.nanogpt`, what nanoGPT prints) and every parameter (`params.total`)."""
    flops_per_token: int
    """Training FLOPs a token, forward and backward: 6·N + 12·L·H·Q·T (`flops_per_token`)."""
    weight_bytes: int
    """fp32 weights: 4 bytes × params.total."""
    gradient_bytes: int
    """fp32 gradients: 4 bytes × params.total."""
    optimizer_bytes: int
    """AdamW's two fp32 moments: 8 bytes × params.total; with muon, 4 bytes (one momentum buffer) for the
    params.muon matrices and 8 for the rest."""
    autocast_copy_bytes: int
    """The 16-bit weight copies autocast keeps for backward: 2 bytes × params.total (16-bit runs only)."""

    @property
    def checkpoint_bytes(self) -> int:
        """What ckpt.pt holds, to a few kB: the weights and the optimizer state (12 bytes a parameter, 8 under
        Muon)."""
        return self.weight_bytes + self.optimizer_bytes


def figures_for(config: RunConfig) -> ModelFigures:
    """Count the parameters once and derive the rest of a config's figures from that count."""
    params = count_params(config)
    n = params.total
    return ModelFigures(params=params, flops_per_token=flops_per_token(config, params),
                        weight_bytes=BYTES_PER_PARAM_WEIGHTS * n, gradient_bytes=BYTES_PER_PARAM_GRADS * n,
                        optimizer_bytes=BYTES_PER_PARAM_MUON * params.muon + BYTES_PER_PARAM_ADAMW * (n - params.muon),
                        autocast_copy_bytes=BYTES_PER_PARAM_AUTOCAST_COPY * n)


def format_count(n: float) -> str:
    """123587328 -> '123.59M'; 1563594 -> '1.56M'; 4.2e9 -> '4.20B' (nanoGPT prints params as 123.59M)."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"
