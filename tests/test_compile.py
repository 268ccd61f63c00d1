"""One torch.compile smoke test on CPU: the compiled model trains like the eager one (needs a C compiler).

Slow (about 20-40 s cold on 2 cores while Inductor compiles forward and backward; seconds from its cache),
but run by default: it is the only check that our model compiles, which the training loop relies on
for CUDA speed.
"""

from __future__ import annotations

import pytest
import torch

from trainer.model.gpt import GPT, ModelArgs, strip_compile_prefix


@pytest.mark.slow
def test_compiled_forward_and_backward_match_eager():
    torch.manual_seed(0)
    model = GPT(ModelArgs(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=50304))
    x = torch.randint(0, 50257, (2, 16), generator=torch.Generator().manual_seed(1))
    y = torch.roll(x, -1, dims=1)

    _, eager_loss = model(x, y)
    eager_loss.backward()
    eager_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    compiled = torch.compile(model)
    _, compiled_loss = compiled(x, y)
    compiled_loss.backward()

    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-4, atol=1e-5)
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, eager_grads[name], rtol=1e-3, atol=1e-6, msg=name)
    # What a checkpoint of the compiled model would store: nanoGPT's names behind `_orig_mod.`.
    assert set(strip_compile_prefix(compiled.state_dict())) == set(model.state_dict())
