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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainer.config import RunConfig
from trainer.errors import ConfigError
from trainer.model.formulas import figures_for
from trainer.plan.memory import accumulation_for, estimate_memory, largest_fitting_batch

GB = 1e9


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
