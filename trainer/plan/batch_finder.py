"""The largest micro-batch that fits, found by real steps on the GPU, and saving the result as a preset.

A size "fits" when two full training steps at it (forward, backward, AdamW step: the second step's
backward is the steady-state peak, with the optimizer's moments allocated) run without running out of
memory. The search doubles from 1 until a size fails (or `limit` is reached), then bisects between the
last size that fitted and the first that failed. The result keeps a 10% safety margin below the largest
size that fitted (memory drifts during a run: fragmentation, evaluation, sampling), and the gradient
accumulation that keeps the config's tokens per iteration.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from trainer.config import RunConfig, config_to_toml, user_preset_dir
from trainer.errors import ConfigError
from trainer.plan.memory import accumulation_for
from trainer.model.precision import autocast_for, precision_for
from trainer.train.oom import free_device_memory, is_out_of_memory

SAFETY_MARGIN = 0.10


@dataclass(frozen=True, slots=True)
class BatchSearch:
    tried: list[tuple[int, bool]]
    """Every micro-batch size tried, in order, and whether it fitted."""
    largest_fitting: int
    """The largest size that fitted."""
    batch_size: int
    """largest_fitting less the safety margin: the size to train with."""
    gradient_accumulation_steps: int
    """Keeps the config's sequences per optimizer step at batch_size (rounded)."""
    tokens_per_iter: int
    """What batch_size × block_size × gradient_accumulation_steps gives (≈ the config's)."""
    hit_limit: bool = False
    """True when the search stopped at `limit` without a failure: larger sizes may fit too."""
    notes: list[str] = field(default_factory=list)

    def apply(self, config: RunConfig) -> RunConfig:
        """The config with the found micro-batch and gradient accumulation."""
        return config.replace(batch_size=self.batch_size,
                              gradient_accumulation_steps=self.gradient_accumulation_steps)


def step_precision(config: RunConfig, device: str) -> str:
    """The precision the training loop would run `config` in on `device` (the same decision:
    trainer.model.precision.precision_for on the detected device), so the search measures that run's memory."""
    from trainer.observe.hardware import detect_device

    return precision_for(config.dtype, detect_device(device))


def make_try_step(config: RunConfig, device: str = "cuda", compiled: bool | None = None) -> Callable[[int], None]:
    """A try_step running two real training steps of `config`'s model at a given micro-batch on `device`.

    The model and AdamW are built once; each call uses random tokens of shape (b, block_size).
    """
    import torch

    from trainer.model.gpt import GPT, ModelArgs

    model = GPT(ModelArgs.from_dict(config.model_args())).to(device)
    optimizer = torch.optim.AdamW(model.optimizer_groups(config.weight_decay), lr=config.learning_rate,
                                  betas=(config.beta1, config.beta2), fused=device.startswith("cuda"))
    if compiled is None:  # the config's choice; "auto" compiles on CUDA, as the engine does
        compiled = config.compile if config.compile is not None else device.startswith("cuda")
    # dynamic=True: one graph for every batch size tried (static shapes would recompile per size and hit
    # dynamo's recompile limit, silently falling back to eager with its larger logits).
    forward = torch.compile(model, dynamic=True) if compiled else model
    precision = step_precision(config, device)

    def try_step(batch_size: int) -> None:
        for _ in range(2):
            x = torch.randint(0, config.vocab_size, (batch_size, config.block_size), device=device)  # (B, T)
            with autocast_for(precision, device):
                _, loss = forward(x, x)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            del x, loss
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return try_step


def find_max_batch(config: RunConfig, try_step: Callable[[int], None] | None = None, *, device: str = "cuda",
                   limit: int = 1024, safety_margin: float = SAFETY_MARGIN,
                   progress: Callable[[int, bool], None] | None = None) -> BatchSearch:
    """Search the largest micro-batch that fits (see the module docstring).

    try_step(b) runs a training step at micro-batch b and raises an out-of-memory error when it does not
    fit; the default runs real steps of the config's model on `device` (CUDA). progress(b, fitted) is
    called after each try. Errors other than out-of-memory propagate.
    """
    if try_step is None:
        import torch

        if not device.startswith("cuda") or not torch.cuda.is_available():
            raise ConfigError("the batch finder runs real steps on a CUDA device and none is visible; "
                              "use the estimate of `fwtui plan` instead")
        try_step = make_try_step(config, device)

    tried: list[tuple[int, bool]] = []

    def fits(b: int) -> bool:
        try:
            try_step(b)
            ok = True
        except Exception as err:  # noqa: BLE001 - only out-of-memory is an answer; the rest propagates
            if not is_out_of_memory(err):
                raise
            ok = False
        free_device_memory()
        tried.append((b, ok))
        if progress is not None:
            progress(b, ok)
        return ok

    good, bad = 0, None  # largest size that fitted, smallest that failed
    b = 1
    while b <= limit:  # doubling: 1, 2, 4, ... until the first failure
        if not fits(b):
            bad = b
            break
        good = b
        if b == limit:
            break
        b = min(2 * b, limit)
    if good == 0:
        raise ConfigError(f"even a micro-batch of 1 runs out of memory on {device} "
                          f"({config.n_layer}/{config.n_head}/{config.n_embd}, block {config.block_size}); "
                          "pick a smaller model or block_size")
    if bad is not None:
        while bad - good > 1:  # bisect: good fits, bad does not
            mid = (good + bad) // 2
            if fits(mid):
                good = mid
            else:
                bad = mid
    batch = max(1, math.floor(good * (1 - safety_margin)))
    accumulation = accumulation_for(config, batch)
    notes = [f"{good} fitted; {batch} keeps a {safety_margin:.0%} safety margin"]
    if bad is None:
        notes.append(f"the search stopped at the limit {limit} without running out of memory")
    return BatchSearch(tried=tried, largest_fitting=good, batch_size=batch,
                       gradient_accumulation_steps=accumulation,
                       tokens_per_iter=batch * config.block_size * accumulation, hit_limit=bad is None, notes=notes)


_PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def save_user_preset(config: RunConfig, name: str, *, description: str | None = None,
                     overwrite: bool = False) -> Path:
    """Write `config` as the user preset `name` (user_preset_dir()/NAME.toml) and return its path."""
    if not _PRESET_NAME.match(name) or name.endswith(".toml"):
        raise ConfigError(f"preset name {name!r}: use letters, digits, '.', '_' and '-' only, "
                          "for example 4070-fitted")
    directory = user_preset_dir()
    path = directory / f"{name}.toml"
    if path.exists() and not overwrite:
        raise ConfigError(f"user preset {name!r} already exists at {path}; pick another name or delete it")
    saved = config.replace(name=name, description=description if description is not None else config.description)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(config_to_toml(saved), encoding="utf-8")
    tmp.replace(path)  # atomic: a preset list never sees half a file
    return path
