"""The one decision of what precision a run computes in, and the peak FLOP/s that precision is held to.

Every place that needs the precision (the training loop, sampling, the batch finder, the memory model,
the planner) calls `resolve_precision`, so they can never disagree:

- `dtype = "auto"`: bf16 autocast on a CUDA card that supports it, fp16 autocast (with loss scaling) on one
  that does not, fp32 on a CPU or MPS;
- an explicit `dtype` is kept, except bf16 asked of a CUDA card without it, which is refused with the fix.

MFU is achieved FLOP/s over the peak *of the precision that ran*. The peak table holds each card's dense
bf16 tensor rate; an fp32 run on CUDA multiplies in TF32 (fwtui turns TF32 on), which NVIDIA's tensor cores
from Ampere on run at half their bf16 rate, so its peak is half the table's. A CPU has no peak (unknown).
torch is imported inside the functions that need it.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING

from trainer.errors import ConfigError

if TYPE_CHECKING:
    from trainer.observe.hardware import DeviceInfo

PRECISIONS = ("bfloat16", "float16", "float32")
TF32_FRACTION_OF_BF16 = 0.5
"""TF32 dense rate over bf16 dense rate on NVIDIA tensor cores, Ampere to Blackwell (A100 156/312,
H100 SXM 494.7/989, RTX 4070 29.1/58.3)."""


def resolve_precision(dtype: str, *, on_cuda: bool, bf16_supported: bool = True,
                      device_name: str = "this GPU") -> str:
    """"bfloat16", "float16" or "float32" for a config's `dtype` on a device (see the module docstring)."""
    if dtype == "bfloat16" and on_cuda and not bf16_supported:
        # torch's autocast would raise a RuntimeError at the first step; say it before, with the fix.
        raise ConfigError(f"dtype = 'bfloat16': the {device_name} has no bfloat16 support; use --set "
                          "dtype=float16 or dtype=auto (float16 with loss scaling on this card)")
    if dtype != "auto":
        return dtype
    if on_cuda:
        return "bfloat16" if bf16_supported else "float16"
    return "float32"


def precision_for(dtype: str, info: "DeviceInfo") -> str:
    """`resolve_precision` for a detected device."""
    return resolve_precision(dtype, on_cuda=info.is_cuda, bf16_supported=info.bf16, device_name=info.name)


def autocast_for(precision: str, device: str):
    """The autocast context a forward pass runs in: bf16/fp16 autocast, or nothing for fp32."""
    import torch

    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def bytes_per_activation(precision: str) -> int:
    """Bytes of one activation value saved for backward: 2 under bf16/fp16 autocast, 4 in fp32."""
    return 2 if precision in ("bfloat16", "float16") else 4


def peak_for_precision(peak_flops: float | None, peak_source: str, precision: str,
                       on_cuda: bool) -> tuple[float | None, str]:
    """(peak FLOP/s, source) that MFU divides by for a run in `precision`.

    The table's bf16 figure for bf16 and fp16 (the same tensor-core rate); half of it, labelled TF32, for
    fp32 on CUDA; a figure the user passed (--peak-tflops) is kept as theirs for whatever precision runs.
    """
    if peak_flops is None or precision != "float32" or not on_cuda or peak_source.startswith("--peak-tflops"):
        return peak_flops, peak_source
    # Read after "MFU 12.3% of 494.5 TFLOP/s (...)": no nested brackets, the bf16 figure's own source kept.
    return (peak_flops * TF32_FRACTION_OF_BF16,
            f"TF32 = {TF32_FRACTION_OF_BF16:g} × bf16 peak; {peak_source}")
