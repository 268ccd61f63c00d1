"""`fwtui runs [DIR]`: the runs in DIR (default ./runs), newest first, as one table.

Each row comes from RUN/events.jsonl and RUN/config.toml (trainer.runs.listing.read_run); a run whose log cannot be
read gets one line saying why instead of a row. The health column gives the number of trainer.observe.health findings
and the first (most serious); every finding is printed in full, with its evidence, under the table.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fwtui import format as fmt
from fwtui.tables import TableColumn, fitted_table, table_console
from trainer.runs.listing import RunInfo, scan_runs

STATUS_STYLE = {"running": "bold green", "finished": "cyan", "stopped": "yellow", "failed": "bold red"}


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _iteration(run: RunInfo) -> str:
    if run.iteration is None:
        return "-"
    return f"{run.iteration:,}" + (f" / {run.max_iters:,}" if run.max_iters else "")


HEALTH_WIDTH = 48
"""The health column's width in characters: the first finding is cut there; the lines below the table hold
each finding whole."""


def _health(run: RunInfo) -> str:
    if run.health is None:
        return "-"  # no step or eval yet: nothing to judge
    if not run.health:
        return "ok"
    return f"{len(run.health)}: {run.health[0].message}"


def _hellaswag(run: RunInfo) -> str:
    """The last acc_norm with its example count, e.g. "0.3012 (2,000)"; "-" when HellaSwag never ran."""
    scored = run.hellaswag
    return "-" if scored is None else f"{scored.acc_norm:.4f} ({scored.count:,})"


def _started(run: RunInfo) -> str:
    if run.start_time is None:
        return "-"
    from datetime import datetime

    return datetime.fromtimestamp(run.start_time).strftime("%Y-%m-%d %H:%M")


COLUMNS = (TableColumn("name"), TableColumn("preset"), TableColumn("status"), TableColumn("iteration", "right"),
           TableColumn("train loss", "right"), TableColumn("val loss", "right"), TableColumn("val bpb", "right"),
           TableColumn("hellaswag", "right"),
           TableColumn("tokens seen", "right"), TableColumn("health", max_width=HEALTH_WIDTH),
           TableColumn("started"), TableColumn("path"))
DROP_ORDER = ("path", "started", "tokens seen", "val bpb", "hellaswag", "preset", "health", "train loss")
"""Columns left out first on a narrow terminal, after any that is "-" on every row (path: the runs directory
and the name say it; health: every finding is printed in full under the table): name, status, iteration and
val loss always stay."""


def runs_table(runs: list[RunInfo], title: str, console: Console) -> tuple[Table, str]:
    """The table at the console's width, and the note naming the columns left out ("" when none)."""
    rows = []
    for run in runs:
        style = STATUS_STYLE.get(run.status, "")
        rows.append([escape(run.name), escape(run.preset or "-"), f"[{style}]{run.status}[/]" if style else run.status,
                     _iteration(run), _loss(run.train_loss), _loss(run.val_loss),
                     "-" if run.val_bpb is None else f"{run.val_bpb:.4f}", _hellaswag(run),
                     "-" if run.tokens_seen is None else fmt.compact(run.tokens_seen),
                     f"[yellow]{escape(_health(run))}[/]" if run.health else _health(run), _started(run),
                     escape(str(run.path))])
    return fitted_table(console, title, COLUMNS, rows, drop_order=DROP_ORDER)


def main(args: argparse.Namespace) -> int:
    console = table_console()
    runs = scan_runs(args.dir)
    readable = [r for r in runs if r.status != "unreadable"]
    if not runs:
        console.print(f"no runs in {escape(str(args.dir))} (a run is a directory with an events.jsonl)",
                      highlight=False)
        return 0
    if readable:
        table, note = runs_table(readable, f"runs in {escape(str(args.dir))}", console)
        console.print(table)
        if note:
            console.print(note, style="dim", highlight=False)
    for run in runs:
        if run.status == "unreadable":
            console.print(f"{escape(run.name)}: unreadable: {escape(run.problem)} ({escape(str(run.path))})",
                          highlight=False)
        elif run.problem:
            console.print(f"{escape(run.name)}: {run.status}: {escape(run.problem)}", highlight=False, style="dim")
    for run in readable:
        for finding in run.health or ():
            console.print(f"{escape(run.name)}: health: {escape(finding.message)}", highlight=False)
    return 0
