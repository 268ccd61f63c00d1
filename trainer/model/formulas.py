"""Closed-form figures from a config alone (no torch): parameter counts and training FLOPs per token.

These are the formulas the planner, the preset table and the MFU meter share, so every screen shows the
same number for the same config.
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


def flops_per_token(config: RunConfig) -> int:
    """Training FLOPs per token, forward and backward: 6·N + 12·L·H·Q·T (PaLM appendix B, as nanoGPT).

    N is nanoGPT's parameter count, L layers, H heads, Q head dimension, T block size.
    """
    n = count_params(config).nanogpt
    return 6 * n + 12 * config.n_layer * config.n_head * config.head_dim * config.block_size


def format_count(n: float) -> str:
    """123587328 -> '123.59M'; 1563594 -> '1.56M'; 4.2e9 -> '4.20B' (nanoGPT prints params as 123.59M)."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"
