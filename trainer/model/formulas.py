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


def count_params(config: RunConfig) -> ParamCount:
    """Exact parameter count of nanoGPT's GPT for this config (vocab padded, tied head)."""
    d, b = config.n_embd, int(config.bias)
    layernorm = d + b * d  # weight, plus bias when bias is on
    attention = 3 * d * d + b * 3 * d + d * d + b * d  # c_attn (d -> 3d), c_proj (d -> d)
    mlp = 4 * d * d + b * 4 * d + 4 * d * d + b * d  # c_fc (d -> 4d), c_proj (4d -> d)
    per_layer = 2 * layernorm + attention + mlp
    token_embedding = config.vocab_size * d  # shared with lm_head (weight tying)
    position_embedding = config.block_size * d
    nanogpt = config.n_layer * per_layer + layernorm + token_embedding  # + ln_f
    return ParamCount(nanogpt=nanogpt, total=nanogpt + position_embedding)


def flops_per_token(config: RunConfig, params: ParamCount | None = None) -> int:
    """Training FLOPs per token, forward and backward: 6·N + 12·L·H·Q·T (PaLM appendix B, as nanoGPT's
    estimate_mfu).

    N is nanoGPT's parameter count (`params` when the caller has counted them, else counted here), L layers,
    H heads, Q head dimension, T block size.
    """
    n = (params if params is not None else count_params(config)).nanogpt
    return 6 * n + 12 * config.n_layer * config.n_head * config.head_dim * config.block_size


# Bytes a parameter takes in training state (REFERENCE.md section 5); every trained parameter, the position
# embedding included, has all of them.
BYTES_PER_PARAM_WEIGHTS = 4  # fp32 master weights
BYTES_PER_PARAM_GRADS = 4  # fp32 gradients
BYTES_PER_PARAM_ADAMW = 8  # exp_avg + exp_avg_sq, fp32
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
    """AdamW's two fp32 moments: 8 bytes × params.total."""
    autocast_copy_bytes: int
    """The 16-bit weight copies autocast keeps for backward: 2 bytes × params.total (16-bit runs only)."""

    @property
    def checkpoint_bytes(self) -> int:
        """What ckpt.pt holds, to a few kB: the weights and the optimizer state (12 bytes a parameter)."""
        return self.weight_bytes + self.optimizer_bytes


def figures_for(config: RunConfig) -> ModelFigures:
    """Count the parameters once and derive the rest of a config's figures from that count."""
    params = count_params(config)
    n = params.total
    return ModelFigures(params=params, flops_per_token=flops_per_token(config, params),
                        weight_bytes=BYTES_PER_PARAM_WEIGHTS * n, gradient_bytes=BYTES_PER_PARAM_GRADS * n,
                        optimizer_bytes=BYTES_PER_PARAM_ADAMW * n,
                        autocast_copy_bytes=BYTES_PER_PARAM_AUTOCAST_COPY * n)


def format_count(n: float) -> str:
    """123587328 -> '123.59M'; 1563594 -> '1.56M'; 4.2e9 -> '4.20B' (nanoGPT prints params as 123.59M)."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"
