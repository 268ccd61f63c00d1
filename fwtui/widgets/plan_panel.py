"""The plan panel: what the chosen run will cost, drawn from trainer.plan.planner's Plan fields.

It computes nothing: every figure is a Plan field (the planner's named formulas and estimates), formatted.
Estimates carry "≈", what nobody knows says "unknown".
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from fwtui.format import UNKNOWN, approx, compact, count, duration, gb_number, gigabytes, percent


def _flops(value: float | None) -> str:
    """Total FLOPs in engineering notation (3.2e18), the unit people compare training budgets in."""
    return UNKNOWN if value is None else f"{value:.2e}"


def plan_rows(plan: Any) -> list[tuple[str, str]]:
    """(label, value) lines for a Plan; one place so the tests can read them without a screen."""
    rows = [("parameters", count(plan.params)),
            ("tokens/iter", count(plan.tokens_per_iter))]
    if plan.dataset_tokens is None:
        rows.append(("dataset", "not chosen"))
    elif plan.dataset_tokens_exact:
        rows.append(("dataset", f"{count(plan.dataset_tokens)} tokens"))
    else:
        rows.append(("dataset", approx(f"{compact(plan.dataset_tokens)} tokens (estimate)")))
    if plan.epochs is None:
        rows.append(("epochs", UNKNOWN))
    else:
        epochs = f"{plan.epochs:.2f}"
        rows.append(("epochs", epochs if plan.dataset_tokens_exact else approx(epochs)))
    rows.append(("total FLOPs", _flops(plan.total_flops)))
    gpus = getattr(plan, "gpus", 1)  # > 1: planner.across_gpus (memory per GPU, time for all of them)
    time_label = f"time, {gpus} GPUs" if gpus > 1 else "time"
    if plan.est_seconds is None:
        rows.append((time_label, UNKNOWN))
    else:
        rows.append((time_label, approx(duration(plan.est_seconds))))
    if plan.expected_mfu is not None:
        rows.append(("MFU", approx(percent(plan.expected_mfu))))  # its source is printed below the rows
    memory, memory_label = plan.est_memory_bytes, "memory/GPU" if gpus > 1 else "memory"
    if memory is None:
        rows.append((memory_label, UNKNOWN))
    elif plan.device_memory_bytes:
        rows.append((memory_label, approx(f"{gb_number(memory)} of {gigabytes(plan.device_memory_bytes)}")))
    else:
        rows.append((memory_label, approx(f"{gigabytes(memory)} (no GPU)")))
    if plan.max_fitting_batch is not None:
        rows.append(("fits batch", f"≤ {plan.max_fitting_batch} (estimate)"))
    return rows


class PlanPanel(Static):
    """Shows a Plan, or a one-line state ("computing…", an error) while there is none."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.border_title = "plan"
        self.plan: Any = None
        self.message: str | None = None
        """The one-line state shown instead of a plan ("fix the overrides…"), or None."""

    def show_plan(self, plan: Any, title: str = "") -> None:
        self.plan, self.message = plan, None
        self.border_title = f"plan · {title}" if title else "plan"
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", no_wrap=True)
        table.add_column()
        over = (plan.est_memory_bytes is not None and plan.device_memory_bytes
                and plan.est_memory_bytes > plan.device_memory_bytes)
        for label, value in plan_rows(plan):
            if label.startswith("memory") and over:
                table.add_row(label, Text(value + " ✗", style="bold red"))
            else:
                table.add_row(label, value)
        # Warnings and the MFU's source are sentences: full-width lines under the figures.
        lines: list[Any] = [table]
        lines += [Text(f"! {warning}", style="yellow") for warning in plan.warnings]
        if plan.expected_mfu is not None and plan.expected_mfu_source:
            lines.append(Text(f"MFU: {plan.expected_mfu_source}", style="dim"))
        # Several GPUs: the planner's note says what it assumed (the scaling efficiency is not measured).
        gpus = getattr(plan, "gpus", 1)
        lines += [Text(note, style="dim") for note in plan.notes if gpus > 1 and note.startswith(f"{gpus} GPUs:")]
        self.update(Group(*lines))

    def show_message(self, text: str, title: str = "") -> None:
        self.plan, self.message = None, text
        self.border_title = f"plan · {title}" if title else "plan"
        self.update(Text(text))
