"""Text from a model: the live model between training steps, or one loaded from a checkpoint
(trainer.train.from_checkpoint.load_model).

Sampling during a run must not change the run: it uses the uncompiled module in eval mode without
gradients, draws its random numbers from its own `torch.Generator` (the global torch, numpy and
Python RNG states are left untouched, so the losses that follow are identical with or without a
sample), and puts the module back in the mode it was in.

It decodes with a KV cache (trainer.model.gpt.KVCache) in the run's precision (trainer.model.precision). On a CPU
it runs on one intra-op thread and gives the thread count back after: a decode step is ~60 small ops,
and an OpenMP team of two on a busy machine (training's worker, the UI, other processes) waits for a
descheduled worker at each of them; on the 2-core VM 100 tokens took 12.6 s on two threads, 0.44 s on one
(bench/sample.py measures it).
"""

from __future__ import annotations

import os
from typing import Callable

import torch

from trainer.model.precision import autocast_for, resolve_precision
from trainer.model.sampling_options import check_sampling
from trainer.model.threads import one_cpu_thread

EOT = 50256  # GPT-2's <|endoftext|>: documents end with it, so a sample stops there


def generate_text(
    model: torch.nn.Module,
    encoding,
    prompt: str,
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = 200,
    seed: int | None = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
    kv_cache: bool = True,
    stopping: Callable[[], bool] | None = None,
) -> str:
    """Continue `prompt` by up to `max_new_tokens` tokens and return the continuation only (decoded).

    `encoding` is a tiktoken Encoding (GPT-2 BPE). An empty prompt starts from <|endoftext|>. The text
    stops before the first generated <|endoftext|>. `top_k` None or <= 0 samples from the whole
    vocabulary; temperature 0 is greedy. `device` defaults to the device of the model's parameters.
    `precision` is the run's ("bfloat16", "float16", "float32"; the trainer passes its own); None
    resolves dtype "auto" for the device, as a run with the default dtype would. `stopping()` true before
    a token ends the text there (a run's stop cuts a long sample short).
    """
    check_sampling(max_new_tokens, temperature, top_k)
    module = getattr(model, "_orig_mod", model)  # a torch.compile wrapper: sample on the eager module
    if device is None:
        device = next(module.parameters()).device
    device = torch.device(device)
    ids = encoding.encode_ordinary(prompt) if prompt else []
    if not ids:
        ids = [EOT]
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)

    # Our own generator: torch.multinomial draws from it, never from the global RNG.
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)

    if precision is None:
        on_cuda = device.type == "cuda"
        precision = resolve_precision("auto", on_cuda=on_cuda,
                                      bf16_supported=on_cuda and torch.cuda.is_bf16_supported())
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), autocast_for(precision, device.type), one_cpu_thread(device):
            out = module.generate(idx, max_new_tokens, temperature=temperature,
                                  top_k=top_k if top_k and top_k > 0 else None, generator=generator,
                                  kv_cache=kv_cache, stopping=stopping)
    finally:
        module.train(was_training)
    new = out[0, len(ids):].tolist()
    if EOT in new:
        new = new[: new.index(EOT)]
    return encoding.decode(new)
