"""Recognising an out-of-memory error, clearing up after one (the loop and the batch finder share these), the
micro-batch to retry with or the one clear error, and a GradScaler reset for the retry."""

from __future__ import annotations

import gc

from trainer.errors import FwtuiError


# What torch's CPU allocator says when malloc fails (c10/core/impl/alloc_cpu.cpp): "DefaultCPUAllocator: can't
# allocate memory: you tried to allocate N bytes. Error code 12 (Cannot allocate memory)".
CPU_ALLOCATOR_FAILURES = ("can't allocate memory", "cannot allocate memory")


def is_out_of_memory(err: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, a RuntimeError saying "out of memory" (older torch, cuBLAS, compile), or
    the CPU allocator's failure: all one case for the loop (one line, or --auto-batch's smaller micro-batch)."""
    try:
        import torch

        if isinstance(err, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or any(s in text for s in CPU_ALLOCATOR_FAILURES))


def forget_unscaled(scaler) -> None:
    """Put a GradScaler back to "nothing recorded this step" after a step that failed part-way: an
    out-of-memory error after `scaler.unscale_(optimizer)` leaves that optimizer marked unscaled, and the
    retry's unscale_ would raise "unscale_() has already been called". This is what `update()` does at a
    step's end, without changing the scale (the failed step said nothing about overflow)."""
    if not scaler.is_enabled():
        return
    from collections import defaultdict

    from torch.amp.grad_scaler import _refresh_per_optimizer_state  # torch's own fresh state (private)

    scaler._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)


def free_device_memory() -> None:
    """Drop what a failed step left behind and hand the cached blocks back, so the next try starts clean."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def smaller_micro_batch(batch_size: int) -> int | None:
    """The micro-batch to retry with after an out-of-memory step: the largest divisor of batch_size at most half
    of it (so accumulation makes up the same tokens an iteration), or None at 1."""
    return next((d for d in range(batch_size // 2, 0, -1) if batch_size % d == 0), None) if batch_size > 1 else None


def out_of_memory_error(device_name: str, batch_size: int, block_size: int, accumulation: int) -> FwtuiError:
    """The one line for an out-of-memory step the loop may not shrink: what ran out, and what to change."""
    hint = (f"try --set batch_size={batch_size // 2} --set gradient_accumulation_steps={accumulation * 2} (same "
            "tokens per iteration) or --auto-batch; `fwtui plan --probe` finds the largest micro-batch that fits"
            if batch_size > 1 else "use a smaller model or block_size")
    return FwtuiError(f"out of memory on {device_name} at micro-batch {batch_size} x block {block_size} "
                      f"(gradient_accumulation_steps {accumulation}); {hint}")
