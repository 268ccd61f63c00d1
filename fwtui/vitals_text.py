"""The vitals as text, for the dashboard's panel and the headless line alike (no textual import here)."""

from __future__ import annotations

from fwtui import format as fmt
from trainer.observe.events import RunStarted, Step


def vitals_lines(run: RunStarted, step: Step | None) -> list[str]:
    """The vitals the Step carries (trainer.observe.vitals), or why the GPU's are missing: the dashboard's
    vitals panel shows these lines, the headless printer joins them into one."""
    lines = []
    if step is not None and step.gpu_util_percent is not None:
        used = (f" · {fmt.gb_number(step.gpu_mem_used_bytes)} of {fmt.gigabytes(step.gpu_mem_total_bytes)} used"
                if step.gpu_mem_used_bytes is not None else "")
        temp = "unknown" if step.gpu_temp_c is None else f"{step.gpu_temp_c:.0f} °C"
        power = "unknown" if step.gpu_power_watts is None else f"{step.gpu_power_watts:.0f} W"
        lines.append(f"GPU {step.gpu_util_percent:.0f}% busy · {temp} · {power}{used}")
    elif not run.device.startswith("cpu"):
        lines.append(run.vitals_source or "GPU vitals: not in this log")
    if step is not None and (step.cpu_load_1m is not None or step.rss_bytes is not None):
        load = "unknown" if step.cpu_load_1m is None else f"{step.cpu_load_1m:.1f}"
        lines.append(f"load {load} (1 min) · RSS {fmt.gigabytes(step.rss_bytes)} when sampled")
    elif step is None:
        lines.append("waiting for the first step")
    return lines
