"""A model from a checkpoint: a run directory or a ckpt.pt file, fwtui's or nanoGPT's, for `fwtui sample`.

nanoGPT's checkpoints load as they are: `_orig_mod.` prefixes (a compiled model's) are stripped, the causal-mask
buffers very old nanoGPT versions saved are dropped, and a tied head may be stored under either name. The file is
read by trainer.train.checkpoint.load_checkpoint (weights_only=True; a corrupt ckpt.pt falls back to ckpt.prev.pt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from trainer.errors import CheckpointError
from trainer.model.gpt import GPT, ModelArgs, strip_compile_prefix
from trainer.recipe import MODEL_SWITCHES
from trainer.train.checkpoint import CKPT_FILE, PREV_FILE, load_checkpoint

# Buffers very old nanoGPT versions saved in the state dict (the causal mask); ours builds no mask.
_OLD_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")
_REQUIRED_MODEL_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")


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


def require_nanogpt_shape(ckpt: dict, path: Path | str) -> None:
    """CheckpointError, one line, unless the checkpoint's model is nanoGPT's GPT (recipe "nanogpt"): a modern-recipe
    model (rotary, RMSNorm, an untied head...) has weights nanoGPT's model.py cannot load or run."""
    on = [k for k in MODEL_SWITCHES if (ckpt.get("model_args") or {}).get(k)]
    if on:
        raise CheckpointError(f"{path} is a modern-recipe model ({', '.join(on)}): nanoGPT's GPT cannot load it; "
                              f"`fwtui sample` runs it, or train with --set recipe=nanogpt for a nanoGPT checkpoint")


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
        modern = model.args.is_nanogpt and "transformer.wpe.weight" not in state  # rotary weights, nanoGPT args
        hint = (" (no position table: a modern-recipe model whose model_args lost its switches)" if modern else "")
        raise CheckpointError(f"{path}: the weights do not fit a GPT with its model_args: "
                              f"{'; '.join(problems)}{hint}; is it a GPT-2-style nanoGPT or fwtui checkpoint?")
    return state


def load_model(
    path_or_run_dir: str | Path, device: str | torch.device = "cpu", *,
    on_warning: Callable[[str], None] | None = None,
) -> tuple[GPT, dict]:
    """(model in eval mode on `device`, the checkpoint dict) from a run directory or a ckpt.pt file.

    Accepts our checkpoints and nanoGPT's (`_orig_mod.` prefixes stripped, old mask buffers dropped).
    Read by trainer.train.checkpoint.load_checkpoint (weights_only=True; a corrupt ckpt.pt falls back to
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
