"""The device a run uses, what it is called, its memory, and its peak FLOP/s with the figure's source.

The peak is the card's dense bf16 tensor rate with fp32 accumulate, no sparsity (REFERENCE.md section 4):
GeForce cards accumulate in fp32 at half their fp16-accumulate rate, and PyTorch's bf16 matmuls
accumulate in fp32, so their half-rate figure is the honest one. An unknown card has no peak: MFU then
says "unknown" (or the user passes --peak-tflops, or measures one) and never borrows the A100's.
torch is imported inside the functions that need it, so the app's first frame does not wait for it.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CardSpec:
    pattern: str
    """Regex matched against the lower-cased device name."""
    label: str
    peak_tflops: float
    board_watts: float
    """Typical board power (the card's TDP/TGP), for the planner's energy estimate."""
    note: str = ""
    memory_gib: float | None = None
    """The card's memory as its spec sheet states it ("12 GB" is 12 GiB; the driver reports ≈ 1% less), or
    None where the name covers cards of different sizes (A100 40/80 GB, RTX 4060 Ti 8/16 GB, RTX 3080 10/12
    GB): planning for one then needs --gpu-memory."""


# Most specific first: "4070 ti" must win over "4070", "h100 pcie" over "h100".
PEAK_TABLE: tuple[CardSpec, ...] = (
    CardSpec(r"rtx 3060\b(?! ti)", "RTX 3060", 25.5, 170, "half-rate accumulate", memory_gib=12),
    CardSpec(r"rtx 3070\b(?! ti)", "RTX 3070", 40.6, 220, "half-rate accumulate", memory_gib=8),
    CardSpec(r"rtx 3080\b(?! ti)", "RTX 3080", 59.5, 320, "half-rate accumulate"),
    CardSpec(r"rtx 3090\b(?! ti)", "RTX 3090", 71.0, 350, "half-rate accumulate", memory_gib=24),
    CardSpec(r"rtx 4060 ti\b", "RTX 4060 Ti", 44.1, 165, "half-rate accumulate"),
    CardSpec(r"rtx 4070 ti\b(?! super)", "RTX 4070 Ti", 80.2, 285, "half-rate accumulate", memory_gib=12),
    CardSpec(r"rtx 4070\b(?! ti| super)", "RTX 4070", 58.3, 200, "half-rate accumulate", memory_gib=12),
    CardSpec(r"rtx 4080\b(?! super)", "RTX 4080", 97.5, 320, "half-rate accumulate", memory_gib=16),
    CardSpec(r"rtx 4090\b(?! d)", "RTX 4090", 165.2, 450, "half-rate accumulate", memory_gib=24),
    CardSpec(r"rtx 5090\b", "RTX 5090", 209.5, 575, "236 measured on a bf16 matmul", memory_gib=32),
    CardSpec(r"rtx a6000\b", "RTX A6000", 154.8, 300, "one source says 77.4 (disputed)", memory_gib=48),
    CardSpec(r"\bl40s\b", "L40S", 362.0, 350, memory_gib=48),
    CardSpec(r"\bl4\b", "L4", 121.0, 72, memory_gib=24),
    CardSpec(r"\ba10\b(?!0)", "A10", 125.0, 150, "disputed: 62 in one review", memory_gib=24),
    CardSpec(r"\ba100\b", "A100", 312.0, 400, "about 271 achievable (SXM)"),
    CardSpec(r"\bh100\b.*\bpcie\b", "H100 PCIe", 756.0, 350, memory_gib=80),
    CardSpec(r"\bh100\b.*\bnvl\b", "H100 NVL", 835.0, 400, memory_gib=94),
    CardSpec(r"\bh100\b", "H100 SXM", 989.0, 700, "about 795 achievable; 798 measured on a lent H100", memory_gib=80),
    CardSpec(r"\bh200\b.*\bnvl\b", "H200 NVL", 836.0, 600, memory_gib=141),
    CardSpec(r"\bh200\b", "H200 SXM", 989.0, 700, "788 measured on a lent H200", memory_gib=141),
    CardSpec(r"\bb200\b", "B200", 2250.0, 1000, memory_gib=180),
)


def card_spec(device_name: str) -> CardSpec | None:
    """The table row for a device name such as "NVIDIA GeForce RTX 4070", or None if not in the table."""
    name = device_name.lower()
    for spec in PEAK_TABLE:
        if re.search(spec.pattern, name):
            return spec
    return None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device: str
    """torch device string: "cuda:0", "cpu", "mps"."""
    name: str
    memory_bytes: int | None
    """Total device memory (CUDA), or the machine's RAM on CPU."""
    peak_flops: float | None
    peak_source: str
    bf16: bool
    """Whether the device runs bf16 autocast natively."""

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def resolve_peak(name: str, override_tflops: float | None = None) -> tuple[float | None, str]:
    """(peak FLOP/s, source) for a device name; an override wins; an unknown card gives (None, why)."""
    if override_tflops is not None:
        return override_tflops * 1e12, f"--peak-tflops {override_tflops:g}"
    spec = card_spec(name)
    if spec is None:
        return None, f"unknown: {name!r} is not in the peak table; pass --peak-tflops or measure it"
    note = f", {spec.note}" if spec.note else ""
    return spec.peak_tflops * 1e12, f"table: {spec.label} bf16 dense {spec.peak_tflops:g} TFLOP/s{note}"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return "CPU: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU: " + (platform.processor() or platform.machine())


def ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def detect_device(requested: str = "auto", peak_tflops: float | None = None) -> DeviceInfo:
    """The torch device a run will use, with its name, memory and peak (imports torch)."""
    import torch

    from trainer.config import DEVICE_NAMES
    from trainer.errors import ConfigError

    if not DEVICE_NAMES.fullmatch(requested):
        raise ConfigError(f"device {requested!r}: not a device; use auto, cpu, cuda, cuda:N or mps")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device = {requested!r}: no CUDA device is visible; use --set device=cpu")
        count = torch.cuda.device_count()
        if ":" in requested and int(requested.split(":")[1]) >= count:
            raise ConfigError(f"device = {requested!r}: this machine shows {count} CUDA device(s), cuda:0 to "
                              f"cuda:{count - 1}; pick one of them (nvidia-smi lists them)")
        index = int(requested.split(":")[1]) if ":" in requested else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        peak, source = resolve_peak(props.name, peak_tflops)
        return DeviceInfo(f"cuda:{index}", props.name, props.total_memory, peak, source,
                          bf16=torch.cuda.is_bf16_supported())
    if requested == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("device = 'mps': this torch build or machine has no Apple GPU (MPS); use "
                              "--set device=cpu (or auto)")
        peak, source = resolve_peak("apple mps", peak_tflops)
        return DeviceInfo("mps", "Apple MPS", ram_bytes(), peak, source, bf16=True)
    name = cpu_name()
    if peak_tflops is not None:
        peak, source = resolve_peak(name, peak_tflops)
    else:
        peak, source = None, "unknown: CPUs have no tensor-core peak in the table; pass --peak-tflops"
    return DeviceInfo("cpu", name, ram_bytes(), peak, source, bf16=False)


@dataclass(frozen=True, slots=True)
class GpuSummary:
    name: str
    memory_bytes: int


def query_gpus() -> list[GpuSummary]:
    """The machine's NVIDIA GPUs from nvidia-smi, without importing torch (for the setup screen).

    Returns [] when there is no nvidia-smi or it fails: the screen then says "CPU".
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, _, mib = line.rpartition(",")
        try:
            gpus.append(GpuSummary(name.strip(), int(float(mib)) * 1024 * 1024))
        except ValueError:
            continue
    return gpus


def measure_matmul_peak(device: str = "cuda", size: int = 8192, repeats: int = 20) -> float:
    """Measured bf16 matmul FLOP/s on `device` (a large square matmul, best of `repeats`). Imports torch."""
    import time

    import torch

    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best
