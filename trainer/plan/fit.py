"""Before the first step: does the run fit the device's memory, by the plan's own memory model?

`fwtui plan` already says a config needs 472 GB on a 25 GB machine; a run started with it must not find out
from the allocator minutes later (on Linux a CPU allocation past the RAM may even succeed and bring the
kernel's OOM killer instead of an error). So the Trainer asks here once, with the device it detected:

- the weights, their gradients and the optimizer's state alone exceed the memory: nothing any micro-batch
  can change, so the run is refused in one line (these terms are exact counts, not estimates);
- the whole estimate exceeds it: with --auto-batch the micro-batch becomes the largest the memory model
  fits, gradient accumulation grows to keep the tokens per iteration (the same change an out-of-memory
  error makes); without it, one warning with that same change spelled out as --set flags.

The estimate is trainer.plan.memory's (the plan's figure), so the app, `fwtui plan` and the run agree.

Growing, the other way (`fit_to_card`, before a new run on CUDA and in `fwtui plan`): at GPT-2 small a
micro-batch of 12 leaves most of an 80 GB card idle and its kernels small; MFU grows with the micro-batch
until each kernel fills the card. So a run whose user set neither batch_size nor gradient_accumulation_steps
takes the largest micro-batch b that is at least the preset's, divides the preset's sequences an iteration
with an accumulation each rank can split (the same tokens), needs at most FIT_FRACTION of the card by the
memory model (its estimates are ±15%), and holds at most MAX_FITTED_TOKENS tokens (≈: past about 64k tokens
a micro-batch the gain is small, as speed runs keep 48k-64k a GPU; not measured here: `bench/train.py
--batch-sweep` measures it on a card). The plan and the run say the choice in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainer.config import RunConfig, parse_override
from trainer.errors import ConfigError
from trainer.model.formulas import figures_for
from trainer.plan.memory import accumulation_for, estimate_memory, largest_fitting_batch

GB = 1e9
FIT_FRACTION = 0.85
MAX_FITTED_TOKENS = 65_536


@dataclass(frozen=True)
class FitVerdict:
    config: RunConfig
    """The config to run: the one given, or (--auto-batch) a smaller micro-batch with more accumulation."""
    warnings: list[str] = field(default_factory=list)


def check_fit(config: RunConfig, *, device_name: str, memory_bytes: int | None, on_cuda: bool,
              bf16_supported: bool = True, auto_batch: bool = False) -> FitVerdict:
    """The run's config as it should start on a device of `memory_bytes` (None: unknown, nothing checked)."""
    if not memory_bytes:
        return FitVerdict(config)
    figures = figures_for(config)
    estimate = estimate_memory(config, on_cuda=on_cuda, bf16_supported=bf16_supported, figures=figures)
    have = f"{memory_bytes / GB:.1f} GB of {device_name}"
    state = sum(estimate.breakdown[k] for k in ("weights", "gradients", "optimizer"))
    if state > memory_bytes:
        raise ConfigError(
            f"the model cannot fit: its weights, gradients and optimizer state alone take {state / GB:.1f} GB "
            f"({figures.params.total:,} parameters x {state // max(1, figures.params.total)} bytes), more than the "
            f"{have}; use a smaller model (n_layer, n_embd) or a larger card (`fwtui plan` shows the figures)")
    if estimate.total_bytes <= memory_bytes:
        return FitVerdict(config)
    need = f"≈ {estimate.total_bytes / GB:.1f} GB (estimate, `fwtui plan`)"
    fits = largest_fitting_batch(config, memory_bytes, on_cuda=on_cuda, bf16_supported=bf16_supported,
                                 limit=config.batch_size, figures=figures)
    if fits == 0:
        return FitVerdict(config, [f"this run needs {need} at micro-batch 1 and the device has {have}: expect "
                                   "an out-of-memory error; use a smaller block_size or model"])
    accumulation = accumulation_for(config, fits)
    flags = f"--set batch_size={fits} --set gradient_accumulation_steps={accumulation}"
    if auto_batch:
        smaller = config.replace(batch_size=fits, gradient_accumulation_steps=accumulation)
        return FitVerdict(smaller, [f"micro-batch {config.batch_size} needs {need}, more than the {have}: "
                                    f"--auto-batch starts at batch_size {fits} x {accumulation} accumulation "
                                    f"steps ({smaller.tokens_per_iter:,} tokens per iteration)"])
    return FitVerdict(config, [f"micro-batch {config.batch_size} needs {need}, more than the {have}: expect an "
                               f"out-of-memory error; {flags} fits with about the same tokens per iteration, "
                               "or add --auto-batch"])


def fitted_micro_batch(config: RunConfig, memory_bytes: int, *, bf16_supported: bool = True,
                       world_size: int = 1) -> int:
    """The largest micro-batch by the rules above; the config's own when no larger one qualifies."""
    sequences = config.batch_size * config.gradient_accumulation_steps  # per optimizer step, all ranks
    figures = figures_for(config)  # the batch changes no figure of the model: counted once
    best = config.batch_size
    for b in range(config.batch_size + 1, sequences + 1):
        if b * config.block_size > MAX_FITTED_TOKENS:
            break
        if sequences % b or (sequences // b) % world_size:
            continue
        estimate = estimate_memory(config, batch_size=b, on_cuda=True, bf16_supported=bf16_supported,
                                   figures=figures)
        if estimate.total_bytes > FIT_FRACTION * memory_bytes:
            break  # the estimate grows with b
        best = b
    return best


def keys_set(overrides: list[str]) -> set[str]:
    """The config keys a list of --set key=value names."""
    return {parse_override(text)[0] for text in overrides}


def fit_to_card(config: RunConfig, memory_bytes: int | None, *, bf16_supported: bool = True,
                overrides: list[str] = (), world_size: int = 1,
                card: str = "the card") -> tuple[RunConfig, str | None]:
    """(the config with the fitted micro-batch, the one line that says so), or (config, None) when it
    stays: no memory figure, the user set the batch, or nothing larger fits."""
    if not memory_bytes or {"batch_size", "gradient_accumulation_steps"} & keys_set(list(overrides)):
        return config, None
    b = fitted_micro_batch(config, memory_bytes, bf16_supported=bf16_supported, world_size=world_size)
    if b == config.batch_size:
        return config, None
    accum = config.batch_size * config.gradient_accumulation_steps // b
    fitted = config.replace(batch_size=b, gradient_accumulation_steps=accum)
    return fitted, (f"micro-batch {b} x {accum} accumulation fitted to {card} ({memory_bytes / 1e9:.1f} GB): the "
                    f"largest the memory model allows under {FIT_FRACTION:.0%} of it, at most "
                    f"{MAX_FITTED_TOKENS:,} tokens; the preset's {config.batch_size} x "
                    f"{config.gradient_accumulation_steps}, the same {config.tokens_per_iter:,} tokens an "
                    f"iteration (--set batch_size=N keeps yours)")
