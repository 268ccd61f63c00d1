"""Text from a model: on the live model between training steps, or from a checkpoint (ours or nanoGPT's).

Sampling during a run must not change the run: it uses the uncompiled module in eval mode without
gradients, draws its random numbers from its own `torch.Generator` (the global torch, numpy and
Python RNG states are left untouched, so the losses that follow are identical with or without a
sample), and puts the module back in the mode it was in.

It decodes with a KV cache (trainer.model.KVCache) in the run's precision (trainer.precision). On a CPU
it runs on one intra-op thread and gives the thread count back after: a decode step is ~60 small ops,
and an OpenMP team of two on a busy machine (training's worker, the UI, other processes) waits for a
descheduled worker at each of them; on the 2-core VM 100 tokens took 12.6 s on two threads, 0.44 s on one
(bench/sample.py measures it).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable

import torch

from trainer.checkpoint import CKPT_FILE, PREV_FILE, load_checkpoint
from trainer.errors import CheckpointError, ConfigError
from trainer.model import GPT, ModelArgs, strip_compile_prefix
from trainer.precision import autocast_for, resolve_precision

EOT = 50256  # GPT-2's <|endoftext|>: documents end with it, so a sample stops there
# Buffers very old nanoGPT versions saved in the state dict (the causal mask); ours builds no mask.
_OLD_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")
_REQUIRED_MODEL_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")


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
) -> str:
    """Continue `prompt` by up to `max_new_tokens` tokens and return the continuation only (decoded).

    `encoding` is a tiktoken Encoding (GPT-2 BPE). An empty prompt starts from <|endoftext|>. The text
    stops before the first generated <|endoftext|>. `top_k` None or <= 0 samples from the whole
    vocabulary; temperature 0 is greedy. `device` defaults to the device of the model's parameters.
    `precision` is the run's ("bfloat16", "float16", "float32"; the trainer passes its own); None
    resolves dtype "auto" for the device, as a run with the default dtype would.
    """
    if max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens = {max_new_tokens}: must be 0 or more")
    if temperature < 0:
        raise ConfigError(f"temperature = {temperature}: must be 0 (greedy) or more, e.g. 0.8")
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
        with torch.no_grad(), autocast_for(precision, device.type), _one_thread_on_cpu(device):
            out = module.generate(idx, max_new_tokens, temperature=temperature,
                                  top_k=top_k if top_k and top_k > 0 else None, generator=generator,
                                  kv_cache=kv_cache)
    finally:
        module.train(was_training)
    new = out[0, len(ids):].tolist()
    if EOT in new:
        new = new[: new.index(EOT)]
    return encoding.decode(new)


@contextlib.contextmanager
def _one_thread_on_cpu(device: torch.device):
    """torch's intra-op threads set to 1 on a CPU while sampling, and set back after (see the docstring)."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def checkpoint_path(path_or_run_dir: str | Path) -> Path:
    """RUN/ckpt.pt for a run directory, the path itself for a file; CheckpointError when there is none."""
    path = Path(path_or_run_dir).expanduser()
    if path.is_dir():
        path = path / CKPT_FILE
    if not path.is_file() and not path.with_name(PREV_FILE).is_file():  # load_checkpoint falls back to prev
        raise CheckpointError(
            f"no checkpoint at {path}: train first (`fwtui train --preset NAME --data PATH --out RUN`) "
            f"or pass a run directory holding ckpt.pt, or a ckpt.pt file"
        )
    return path


def _read_checkpoint(path: Path, on_warning: Callable[[str], None] | None) -> dict:
    """The checkpoint dict, read with weights_only=True (tensors and plain Python values only)."""
    try:
        ckpt = load_checkpoint(path, on_warning=on_warning)
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged file is one line; never retried with full unpickling
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"{path}: unreadable ({type(err).__name__}: {first}); "
                              f"pass a ckpt.pt written by fwtui or nanoGPT") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict; "
                              f"pass a ckpt.pt written by fwtui or nanoGPT")
    return ckpt


def model_args_from(ckpt: dict, path: Path | str) -> ModelArgs:
    """The model shape stored in a checkpoint's `model_args` (nanoGPT's keys)."""
    args = ckpt.get("model_args")
    if not isinstance(args, dict) or "model" not in ckpt:
        missing = "model_args" if not isinstance(args, dict) else "model"
        raise CheckpointError(f"{path} has no {missing!r} entry: not a fwtui or nanoGPT ckpt.pt "
                              f"(keys: {', '.join(map(str, ckpt)) or 'none'})")
    absent = [k for k in _REQUIRED_MODEL_ARGS if k not in args]
    if absent:
        raise CheckpointError(f"{path}: model_args lacks {', '.join(absent)}; cannot rebuild the model")
    return ModelArgs.from_dict(args)


def _match_state_dict(model: GPT, state: dict, path: Path | str) -> dict:
    """The checkpoint's weights renamed and checked against our module; CheckpointError on a mismatch."""
    state = strip_compile_prefix(dict(state))
    ours = model.state_dict()
    state = {k: v for k, v in state.items() if k in ours or not k.endswith(_OLD_BUFFER_SUFFIXES)}
    # The head is tied to the token embedding: one of the two names is enough.
    for a, b in (("lm_head.weight", "transformer.wte.weight"), ("transformer.wte.weight", "lm_head.weight")):
        if a not in state and b in state:
            state[a] = state[b]
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in ours.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} "
                        f"({', '.join(unexpected[:3])}{', ...' if len(unexpected) > 3 else ''})")
    if wrong:
        problems.append(f"wrong shape {len(wrong)} ({', '.join(wrong[:2])}{', ...' if len(wrong) > 2 else ''})")
    if problems:
        raise CheckpointError(f"{path}: the weights do not fit a GPT with its model_args: "
                              f"{'; '.join(problems)}; is it a GPT-2-style nanoGPT or fwtui checkpoint?")
    return state


def load_model(
    path_or_run_dir: str | Path, device: str | torch.device = "cpu", *,
    on_warning: Callable[[str], None] | None = None,
) -> tuple[GPT, dict]:
    """(model in eval mode on `device`, the checkpoint dict) from a run directory or a ckpt.pt file.

    Accepts our checkpoints and nanoGPT's (`_orig_mod.` prefixes stripped, old mask buffers dropped).
    Read by trainer.checkpoint.load_checkpoint (weights_only=True; a corrupt ckpt.pt falls back to
    ckpt.prev.pt, reported through `on_warning`).
    """
    path = checkpoint_path(path_or_run_dir)
    ckpt = _read_checkpoint(path, on_warning)
    args = model_args_from(ckpt, path)
    model = GPT(args)
    state = _match_state_dict(model, ckpt["model"], path)
    model.load_state_dict(state, strict=True)
    model.to(device)
    model.eval()
    return model, ckpt
