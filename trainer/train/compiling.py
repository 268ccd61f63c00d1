"""torch.compile for the Trainer: whether and how the model is compiled, and the one warning when it cannot be.

torch.compile itself returns at once; dynamo and Inductor work at the first call (the first step, or the
first evaluation), so a compiler that fails on a user's card fails there, not here. The loop catches that
failure (Trainer._triage) and comes back to `fallback_warning`: the run goes on eager, with one warning.
`compile_mode` is torch.compile's `mode` ("default", or "max-autotune-no-cudagraphs": autotuned matmul and
Triton configurations, a longer first compile, without CUDA graphs, whose static buffers the loop's
accumulation and evaluation would fight).
"""

from __future__ import annotations

from typing import Callable

import torch

COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")


def compile_model(model: torch.nn.Module, *, wanted: bool, mode: str,
                  warn: Callable[[str], None]) -> tuple[torch.nn.Module, bool]:
    """(the module to call, compiled?): `model` compiled in `mode` when `wanted`; the model itself, and one
    warning, when torch.compile refuses at once (a missing compiler back end, an unsupported platform)."""
    if not wanted:
        return model, False
    try:
        return torch.compile(model, mode=None if mode == "default" else mode), True
    except Exception as err:  # noqa: BLE001 - any compiler failure means: run eager
        warn(fallback_warning(type(err).__name__, str(err), at_setup=True))
        return model, False


def fallback_warning(name: str, message: str, at_setup: bool = False) -> str:
    """The one line a run says when it goes on eager after a compiler failure (at setup: before any step)."""
    first = message.strip().splitlines()[0][:200] if message.strip() else ""
    return f"torch.compile failed ({name}: {first}); {'running' if at_setup else 'continuing'} eager (slower)"
