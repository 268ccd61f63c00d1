"""Rotary position embeddings and RMSNorm: the modern recipe's layers (trainer/recipe.py).

Rotary (Su et al. 2021, RoFormer): instead of adding a learned position vector to the input, each head's q and
k are rotated, pair of channels by pair, by an angle proportional to the token's absolute position, so q·k
depends only on the distance between the two tokens. Channel pair i turns at frequency base^(-2i/hs); the
halves of the head form the pairs (channel i with i + hs/2). The angles for positions 0..block_size-1 are
computed once (buffers not saved in the state dict: they follow from the shape).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F

ROTARY_BASE = 10000.0  # the RoFormer / GPT-NeoX base: the slowest pair turns once in ~63k positions


class Rotary(nn.Module):
    def __init__(self, head_dim: int, block_size: int) -> None:
        super().__init__()
        inv_freq = ROTARY_BASE ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (hs/2,)
        angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)  # (block_size, hs/2)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x (B, nh, T, hs) at absolute positions start..start+T-1, rotated; same shape and dtype."""
        T = x.size(2)
        cos = self.cos[start:start + T].to(x.dtype)  # (T, hs/2), broadcast over B and nh
        sin = self.sin[start:start + T].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)  # each (B, nh, T, hs/2)
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class RMSNorm(nn.Module):
    """x / rms(x) * weight: LayerNorm without the mean subtraction and the bias (Zhang & Sennrich 2019)."""

    def __init__(self, ndim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight, 1e-6)


def rms(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free RMS normalisation over the last dimension (QK-norm), in x's dtype."""
    return F.rms_norm(x, (x.size(-1),), eps=1e-6).to(x.dtype)
