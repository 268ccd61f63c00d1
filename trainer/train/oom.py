"""Recognising an out-of-memory error, and clearing up after one (the loop and the batch finder share these)."""

from __future__ import annotations

import gc


def is_out_of_memory(err: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or a RuntimeError saying "out of memory" (older torch, cuBLAS, compile)."""
    try:
        import torch

        if isinstance(err, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def free_device_memory() -> None:
    """Drop what a failed step left behind and hand the cached blocks back, so the next try starts clean."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
