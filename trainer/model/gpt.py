"""GPT-2 as nanoGPT writes it, with nanoGPT's parameter names, so checkpoints move both ways.

Token and position embeddings, pre-LayerNorm blocks, causal attention through
`scaled_dot_product_attention` (flash attention on CUDA), a GELU MLP, the head tied to the token
embedding, optional bias, dropout, GPT-2 initialisation. Shapes: B batch, T time, C n_embd, nh heads,
hs head size (C // nh), V vocab (padded to 50304).

The modern recipe (trainer/recipe.py) switches parts out, each by its own ModelArgs field: rotary positions
(no wpe), QK-norm, ReLU², RMSNorm, zero-initialised output projections, an untied zero-initialised head, a
tanh logit cap. With every switch off (the default) the module, its state_dict keys and its forward are
nanoGPT's.

Sampling decodes incrementally (`decode` with a `KVCache`): the prompt goes through once, then each new
token alone, attending to the keys and values cached from before. The training `forward` is untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
from torch.nn import functional as F

from trainer.model.rotary import RMSNorm, Rotary, rms
from trainer.recipe import MODEL_SWITCHES


@dataclass(frozen=True, slots=True)
class ModelArgs:
    """nanoGPT's `model_args`, the keys stored in ckpt.pt."""

    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    block_size: int = 1024
    vocab_size: int = 50304
    dropout: float = 0.0
    bias: bool = False
    # the modern recipe's switches (RunConfig documents each); all off = nanoGPT's GPT
    rotary: bool = False
    qk_norm: bool = False
    relu2_mlp: bool = False
    rms_norm: bool = False
    zero_init_proj: bool = False
    untied_head: bool = False
    logit_softcap: float = 0.0

    @classmethod
    def from_dict(cls, d: dict) -> "ModelArgs":
        return cls(**{f: d[f] for f in cls.__dataclass_fields__ if f in d})

    @property
    def is_nanogpt(self) -> bool:
        """Every recipe switch off: the model nanoGPT builds and loads."""
        return not any(getattr(self, f) for f in MODEL_SWITCHES)


def make_norm(args: ModelArgs) -> nn.Module:
    return RMSNorm(args.n_embd) if args.rms_norm else LayerNorm(args.n_embd, bias=args.bias)


class KVCache:
    """The keys and values of the tokens decoded so far, for every layer: what `GPT.decode` attends to.

    keys[i] and values[i] are layer i's, each (B, nh, block_size, hs), allocated at the first token in the
    dtype attention produced them in (bf16 under bf16 autocast); positions 0..length-1 are filled.
    """

    def __init__(self, n_layer: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer
        self.length = 0  # tokens cached, the position the next token takes

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor, block_size: int) -> tuple[torch.Tensor, ...]:
        """Write the new tokens' k, v (B, nh, T, hs) at positions length..length+T-1; return all cached so far."""
        if self.keys[layer] is None:
            B, nh, _, hs = k.shape
            self.keys[layer] = k.new_empty(B, nh, block_size, hs)
            self.values[layer] = v.new_empty(B, nh, block_size, hs)
        end = self.length + k.size(2)
        self.keys[layer][:, :, self.length:end] = k
        self.values[layer][:, :, self.length:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]  # each (B, nh, length + T, hs)


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch's has none to switch off before 2.1's `bias=`; kept for names)."""

    def __init__(self, ndim: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        assert args.n_embd % args.n_head == 0
        self.c_attn = nn.Linear(args.n_embd, 3 * args.n_embd, bias=args.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(args.n_embd, args.n_embd, bias=args.bias)
        self.attn_dropout = args.dropout
        self.resid_dropout = nn.Dropout(args.dropout)
        self.n_head = args.n_head
        self.n_embd = args.n_embd
        self.qk_norm = args.qk_norm
        self.rotary = Rotary(args.n_embd // args.n_head, args.block_size) if args.rotary else None

    def heads(self, x: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v (B, nh, T, hs) for x (B, T, C) at positions start..: QK-norm, then the rotary angle."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if self.qk_norm:
            q, k = rms(q), rms(k)
        if self.rotary is not None:
            q, k = self.rotary(q, start), self.rotary(k, start)
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.heads(x, 0)
        # Flash attention on CUDA (fp16/bf16); the math kernel elsewhere. Never materialises T x T on GPU.
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None, dropout_p=self.attn_dropout if self.training else 0.0, is_causal=True
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads side by side
        return self.resid_dropout(self.c_proj(y))

    def decode(self, x: torch.Tensor, cache: KVCache, layer: int, block_size: int) -> torch.Tensor:
        """`forward` for T new tokens at positions cache.length.. that also attend to the cached ones."""
        B, T, C = x.size()
        start = cache.length
        q, k, v = self.heads(x, start)  # rotated at their absolute positions, as in forward
        k, v = cache.store(layer, k, v, block_size)  # (B, nh, start + T, hs)
        if T == 1:  # the usual step: one query that may see every cached key, no mask needed
            y = F.scaled_dot_product_attention(q, k, v)
        elif start == 0:  # the prompt: plain causal attention, as in training
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # several new tokens after cached ones: query t (position start + t) sees keys 0..start + t
            mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(diagonal=start)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.c_proj(y)  # eval only: no dropout


class MLP(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.c_fc = nn.Linear(args.n_embd, 4 * args.n_embd, bias=args.bias)
        self.gelu = nn.GELU()
        self.relu2 = args.relu2_mlp
        self.c_proj = nn.Linear(4 * args.n_embd, args.n_embd, bias=args.bias)
        self.dropout = nn.Dropout(args.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)  # (B, T, 4C)
        h = F.relu(h).square() if self.relu2 else self.gelu(h)
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.ln_1 = make_norm(args)
        self.attn = CausalSelfAttention(args)
        self.ln_2 = make_norm(args)
        self.mlp = MLP(args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def decode(self, x: torch.Tensor, cache: KVCache, layer: int, block_size: int) -> torch.Tensor:
        x = x + self.attn.decode(self.ln_1(x), cache, layer, block_size)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        parts = dict(wte=nn.Embedding(args.vocab_size, args.n_embd))
        if not args.rotary:  # rotary positions need no table
            parts["wpe"] = nn.Embedding(args.block_size, args.n_embd)
        parts.update(drop=nn.Dropout(args.dropout), h=nn.ModuleList([Block(args) for _ in range(args.n_layer)]),
                     ln_f=make_norm(args))
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(args.n_embd, args.vocab_size, bias=False)
        if not args.untied_head:
            # Weight tying: the head shares the token embedding (one V x C matrix, counted once).
            self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2 scales the residual projections by 1/sqrt(2 * n_layer): two residual adds per layer.
        # zero_init_proj starts them at 0 instead (every block the identity at step 0); an untied head
        # starts at 0 too (uniform predictions at step 0; its gradient is not 0, so it learns at once).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                if args.zero_init_proj:
                    torch.nn.init.zeros_(p)
                else:
                    torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * args.n_layer))
        if args.untied_head:
            torch.nn.init.zeros_(self.lm_head.weight)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """nanoGPT's count: all parameters less the position embedding (non_embedding=True)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n

    def embed(self, idx: torch.Tensor, start: int) -> torch.Tensor:
        """Token (plus learned position, without rotary) embeddings of idx (B, T) at positions start.. -> (B, T, C)."""
        x = self.transformer.wte(idx)
        if "wpe" in self.transformer:
            pos = torch.arange(start, start + idx.size(1), dtype=torch.long, device=idx.device)  # (T,)
            x = x + self.transformer.wpe(pos)
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) of the final hidden states x (B, T, C); with logit_softcap, cap * tanh(z / cap)."""
        logits = self.lm_head(x)
        cap = self.args.logit_softcap
        return cap * torch.tanh(logits / cap) if cap else logits

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, V) and the mean cross-entropy when targets (B, T) are given.

        Without targets only the last position's logits (B, 1, V) are computed (for sampling).
        """
        B, T = idx.size()
        if T > self.args.block_size:
            raise ValueError(f"sequence of length {T} exceeds block_size {self.args.block_size}")
        x = self.transformer.drop(self.embed(idx, 0))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.head(x)  # (B, T, V)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1), ignore_index=-1)
            return logits, loss
        return self.head(x[:, [-1], :]), None  # (B, 1, V)

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay on tensors of 2+ dims (matmuls, embeddings), none on biases and norms."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]

    def decode(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (B, 1, V) after the tokens idx (B, T), which take positions cache.length.., cached as they go.

        The same computation as `forward(idx_so_far)` in eval mode, without recomputing the cached tokens.
        """
        B, T = idx.size()
        start = cache.length
        if start + T > self.args.block_size:
            raise ValueError(f"{start} cached + {T} new tokens exceed block_size {self.args.block_size}")
        x = self.embed(idx, start)  # (B, T, C); eval only: no dropout
        for layer, block in enumerate(self.transformer.h):
            x = block.decode(x, cache, layer, self.args.block_size)
        cache.length += T
        x = self.transformer.ln_f(x[:, -1:, :])  # only the last position's logits are needed
        return self.head(x)  # (B, 1, V)

    @torch.no_grad()
    def generate(
        self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
        generator: torch.Generator | None = None, kv_cache: bool = True,
        stopping: Callable[[], bool] | None = None,
    ) -> torch.Tensor:
        """Extend idx (B, T) by max_new_tokens sampled tokens; the context is cropped to block_size.

        With `kv_cache` the prompt is decoded once and then each new token alone. The positions are
        absolute (wpe), so once the text outgrows block_size the window nanoGPT crops to (the last
        block_size tokens, at positions 0..block_size-1; rotary angles too are absolute) shifts by one each token and no cached key stays
        valid: the cache is reset and the window decoded afresh, which costs what an uncached step costs.
        Without `kv_cache` every step runs the full window through `forward`, as nanoGPT does.
        `stopping()` true before a token ends the text there (a run's stop cuts a long sample short).
        """
        block = self.args.block_size
        cache = None
        for _ in range(max_new_tokens):
            if stopping is not None and stopping():
                break
            if not kv_cache:
                logits, _ = self(idx if idx.size(1) <= block else idx[:, -block:])
            elif cache is None or idx.size(1) > block:
                cache = KVCache(self.args.n_layer)  # the prompt, or a cropped window: decode it whole
                logits = self.decode(idx[:, -block:], cache)
            else:
                logits = self.decode(idx[:, -1:], cache)  # the token chosen last step, at position T - 1
            idx = torch.cat((idx, next_token(logits[:, -1, :], temperature, top_k, generator)), dim=1)
        return idx


GPT2_VOCAB = 50257
"""GPT-2's real vocabulary; ids from here to vocab_size (50304) are padding and never sampled."""


def next_token(logits: torch.Tensor, temperature: float, top_k: int | None,
               generator: torch.Generator | None) -> torch.Tensor:
    """The next token (B, 1) from the last position's logits (B, V): argmax at temperature 0, else a draw.

    A draw with `top_k` picks among the k largest logits only (softmax over those k, a multinomial over k
    rather than over all 50,257: the same distribution, ~1 ms less per token on a CPU); ties at the k-th
    value keep the first k, where nanoGPT keeps them all.
    """
    logits = logits[:, :GPT2_VOCAB].float()  # (B, V') with V' = min(V, 50257)
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        values, ids = torch.topk(logits, top_k)  # each (B, k)
        choice = torch.multinomial(F.softmax(values, dim=-1), num_samples=1, generator=generator)  # (B, 1)
        return ids.gather(-1, choice)
    return torch.multinomial(F.softmax(logits, dim=-1), num_samples=1, generator=generator)


def strip_compile_prefix(state_dict: dict) -> dict:
    """A compiled model's state dict prefixes every key with `_orig_mod.`; nanoGPT checkpoints may too."""
    prefix = "_orig_mod."
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state_dict.items()}
