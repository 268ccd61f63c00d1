"""Plan for a card you do not have: a DeviceInfo built from the peak table (or from a memory and peak you
give), so `fwtui plan --gpu "RTX 4070"` on a laptop plans the run as that card would run it.

A card runs what the loop would choose there (trainer.model.precision): bf16 autocast (every card of the
table runs bf16), flash attention (on CUDA in 16-bit) and torch.compile (the default on CUDA) unless the
config says otherwise; `for_card` sets the config's device to CUDA so a CPU preset is planned on the GPU.
The memory is the card's spec (CardSpec.memory_gib), the peak its bf16 dense figure: both estimates of what
the real card gives, and labelled so.
"""

from __future__ import annotations

import dataclasses
import re

from trainer.config import RunConfig
from trainer.errors import ConfigError
from trainer.observe.hardware import PEAK_TABLE, CardSpec, DeviceInfo, GpuSummary, card_spec

GIB = 1024**3
CUSTOM_CARD = "a GPU you described"


def find_card(name: str) -> CardSpec:
    """The table row for a name as a user types it ("RTX 4070", "rtx4070", "h100 sxm", "4090")."""
    typed = " ".join(name.lower().replace("geforce", " ").replace("nvidia", " ").split())
    for spec in PEAK_TABLE:
        if typed == spec.label.lower():
            return spec
    spaced = re.sub(r"(rtx)(\d)", r"\1 \2", typed)  # "rtx4070" -> "rtx 4070"
    for candidate in (spaced, f"rtx {spaced}"):  # a bare "4090" is the GeForce card
        spec = card_spec(candidate)
        if spec is not None:
            return spec
    labels = ", ".join(spec.label for spec in PEAK_TABLE)
    raise ConfigError(f"--gpu {name!r}: not in the peak table ({labels}); describe the card instead with "
                      "--gpu-memory SIZE --peak-tflops T")


def parse_memory(text: str) -> int:
    """Bytes for "12GB" (10^9), "12GiB" (2^30), "24G" or "80" (GB); ConfigError naming the fix if not."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(gib|gb|g)?\s*", text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"--gpu-memory {text!r}: give a size such as 12GB or 11.5GiB")
    unit = GIB if match.group(2) == "gib" else 10**9
    return int(float(match.group(1)) * unit)


def card_device(gpu: str | None, memory: str | None = None, peak_tflops: float | None = None) -> DeviceInfo:
    """The device to plan for: a card of the table by name, its memory and peak overridable; or, without a
    name, a card described by --gpu-memory (required then) and --peak-tflops (else MFU and time unknown)."""
    if peak_tflops is not None and peak_tflops <= 0:
        raise ConfigError(f"--peak-tflops {peak_tflops}: must be above 0")
    memory_bytes = parse_memory(memory) if memory is not None else None
    if gpu is None:
        if memory_bytes is None:
            raise ConfigError("plan for a card: name it (--gpu \"RTX 4070\") or describe it (--gpu-memory 12GB "
                              "--peak-tflops 58.3)")
        peak = peak_tflops * 1e12 if peak_tflops is not None else None
        source = (f"--peak-tflops {peak_tflops:g}" if peak is not None
                  else "unknown: pass --peak-tflops for this card's bf16 dense peak")
        return DeviceInfo("cuda", CUSTOM_CARD, memory_bytes, peak, source, bf16=True)
    spec = find_card(gpu)
    if memory_bytes is None:
        if spec.memory_gib is None:
            raise ConfigError(f"--gpu {gpu!r}: the {spec.label} comes in more than one memory size; add "
                              "--gpu-memory (e.g. 40GiB or 80GiB)")
        memory_bytes = int(spec.memory_gib * GIB)
    if peak_tflops is not None:
        peak, source = peak_tflops * 1e12, f"--peak-tflops {peak_tflops:g}"
    else:
        note = f", {spec.note}" if spec.note else ""
        peak, source = spec.peak_tflops * 1e12, f"table: {spec.label} bf16 dense {spec.peak_tflops:g} TFLOP/s{note}"
    return DeviceInfo("cuda", spec.label, memory_bytes, peak, source, bf16=True)


def memory_source(device: DeviceInfo, gpu: str | None, memory: str | None) -> str:
    """Where the planned card's memory figure came from, for the plan's notes."""
    if memory is not None:
        return f"card memory {device.memory_bytes / 1e9:.1f} GB from --gpu-memory {memory}"
    return (f"card memory {device.memory_bytes / GIB:g} GiB from the {device.name}'s spec (the driver reports "
            "≈ 1% less)")


def for_card(config: RunConfig) -> RunConfig:
    """The config as it would run on a CUDA card: device cuda; dtype, compile and the rest as the config says
    (auto: bf16 and compile on a card)."""
    return dataclasses.replace(config, device="cuda") if config.device in ("cpu", "mps") else config


def next_card(current_label: str | None, backwards: bool = False) -> GpuSummary | None:
    """The setup screen's "plan for" keys: this machine (None) -> each card of the table whose memory is
    known, in table order -> this machine again (`backwards`: the same ring the other way). A GpuSummary
    (name, spec memory) as nvidia-smi would give."""
    cards = [GpuSummary(spec.label, int(spec.memory_gib * GIB)) for spec in PEAK_TABLE if spec.memory_gib]
    ring: list[GpuSummary | None] = [None, *cards]  # this machine, then the cards
    labels = [None, *(card.name for card in cards)]
    here = labels.index(current_label) if current_label in labels else 0
    return ring[(here + (-1 if backwards else 1)) % len(ring)]
