"""The KV cache: cached decoding gives exactly the tokens the uncached full-context forward gives, and
sampling runs in the run's precision on one CPU thread, leaving the thread count as it was."""

from __future__ import annotations

import pytest
import torch

from trainer.model.gpt import GPT, KVCache, ModelArgs
from trainer.model.sampling import generate_text
from trainer.data.tokenizer import get_encoding

TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=50304)


def tiny(seed: int = 0, **over) -> GPT:
    return GPT(ModelArgs(**{**TINY, **over})).eval()


def lively(seed: int = 0, **over) -> GPT:
    """A random GPT whose next token depends on the whole context, so a cache that got a position or a
    key wrong changes the text: matrices drawn wide (std 0.3, not GPT-2's 0.02) and the head untied (a
    tied head at this width keeps repeating one token). A small vocabulary keeps it fast."""
    torch.manual_seed(seed)
    model = GPT(ModelArgs(**{**TINY, "vocab_size": 512, **over})).eval()
    model.lm_head.weight = torch.nn.Parameter(torch.empty_like(model.lm_head.weight))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:  # matrices and embeddings; norms and biases keep their init
                p.normal_(0.0, 0.3)
    return model


def reference_generate(model: GPT, idx: torch.Tensor, steps: int, temperature: float, top_k: int | None,
                       generator: torch.Generator | None) -> torch.Tensor:
    """nanoGPT's loop written out: the full cropped context through `forward` at every step, no cache."""
    from trainer.model.gpt import next_token

    block = model.args.block_size
    for _ in range(steps):
        with torch.no_grad():
            logits, _ = model(idx[:, -block:])  # (B, 1, V): the last position's
        idx = torch.cat((idx, next_token(logits[:, -1, :], temperature, top_k, generator)), dim=1)
    return idx


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("prompt_len, steps", [(1, 10), (5, 30), (16, 4), (20, 6)])
def test_greedy_cached_tokens_equal_the_uncached_forwards(bias, prompt_len, steps):
    # (5, 30): 35 tokens with block_size 16, so the crop is crossed; (16, 4): a full block as the prompt;
    # (20, 6): a prompt longer than the block, cropped before the first step.
    model = lively(bias=bias)
    idx = torch.randint(0, 512, (2, prompt_len), generator=torch.Generator().manual_seed(prompt_len))
    cached = model.generate(idx, steps, temperature=0.0, kv_cache=True)
    expected = reference_generate(model, idx, steps, 0.0, None, None)
    assert cached.shape == (2, prompt_len + steps)
    assert torch.equal(cached, expected)
    # The greedy text varies, so the comparison is not between two constant outputs.
    assert len(set(cached[0, prompt_len:].tolist())) > 1


@pytest.mark.parametrize("top_k", [5, 50, None])
def test_seeded_top_k_draws_are_the_same_with_and_without_the_cache(top_k):
    model = lively()
    idx = torch.randint(0, 512, (1, 3), generator=torch.Generator().manual_seed(1))
    cached = model.generate(idx, 40, temperature=1.0, top_k=top_k, generator=torch.Generator().manual_seed(7))
    uncached = model.generate(idx, 40, temperature=1.0, top_k=top_k, generator=torch.Generator().manual_seed(7),
                              kv_cache=False)
    expected = reference_generate(model, idx, 40, 1.0, top_k, torch.Generator().manual_seed(7))
    assert torch.equal(cached, expected) and torch.equal(uncached, expected)


def test_decoding_piece_by_piece_gives_the_full_forwards_logits():
    """Prompt, then 3 tokens at once after cached ones (the masked case), then one: each equals forward."""
    model = lively(bias=True)
    idx = torch.randint(0, 512, (2, 12), generator=torch.Generator().manual_seed(3))
    cache = KVCache(model.args.n_layer)
    with torch.no_grad():
        full, _ = model(idx, idx)  # (2, 12, V): logits at every position
        pieces = [(0, 5), (5, 8), (8, 9), (9, 12)]
        for start, end in pieces:
            logits = model.decode(idx[:, start:end], cache)  # (2, 1, V) at position end - 1
            torch.testing.assert_close(logits[:, 0], full[:, end - 1], rtol=0, atol=1e-4)
    assert cache.length == 12
    assert cache.keys[0].shape == (2, 2, 16, 16)  # (B, n_head, block_size, head_dim)


def test_decoding_past_the_block_is_refused():
    model = tiny()
    cache = KVCache(model.args.n_layer)
    with torch.no_grad():
        model.decode(torch.zeros((1, 16), dtype=torch.long), cache)
        with pytest.raises(ValueError, match="exceed block_size 16"):
            model.decode(torch.zeros((1, 1), dtype=torch.long), cache)


def test_padding_ids_are_never_sampled():
    model = tiny()
    with torch.no_grad():
        model.lm_head.weight[50257:] = 10.0  # make the padding rows the likeliest by far (tied to wte)
    out = model.generate(torch.tensor([[1, 2]]), 20, temperature=1.0, top_k=None,
                         generator=torch.Generator().manual_seed(0))
    assert int(out.max()) < 50257


def test_sampling_runs_in_the_given_precision():
    encoding = get_encoding()
    model = tiny()
    seen = []
    model.transformer.h[0].attn.c_attn.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    generate_text(model, encoding, "a", max_new_tokens=3, seed=0, precision="bfloat16")
    assert seen and set(seen) == {torch.bfloat16}
    assert model.transformer.h[0].attn.c_attn.weight.dtype == torch.float32  # autocast, weights untouched
    seen.clear()
    generate_text(model, encoding, "a", max_new_tokens=3, seed=0)  # None: dtype auto, fp32 on a CPU
    assert set(seen) == {torch.float32}


def test_a_cpu_sample_runs_on_one_thread_and_restores_the_count():
    encoding = get_encoding()
    model = tiny()
    before = torch.get_num_threads()
    seen = []
    model.transformer.h[0].mlp.register_forward_hook(lambda m, i, o: seen.append(torch.get_num_threads()))
    generate_text(model, encoding, "a", max_new_tokens=3, seed=0)
    assert seen == [1, 1, 1]
    assert torch.get_num_threads() == before
