"""The compare screen's legend (a line a run, or a line a seed group) and its `t` table of the seed groups.

A seed group (two or more runs of one config, seed aside: trainer.runs.significance) shows as one line in
its colour: its label, how many runs, and the final val loss and bits per byte as mean ± sd. `t` opens the
whole comparison (fwtui.seed_summary): each group, then each pair's difference, 95% interval and Welch's p.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from fwtui import format as fmt
from fwtui.chart_math import PALETTE
from fwtui.compared_runs import ComparedRun, seed_groups, summary_groups
from fwtui.seed_summary import group_figures, summary_lines
from trainer.runs.significance import SeedGroup


def _group_line(text: Text, members: list[ComparedRun], group: SeedGroup) -> None:
    colour = PALETTE[members[0].slot][1]
    cells = group_figures(group)
    text.append("━━ ", style=colour)
    text.append(group.label, style=f"bold {colour}")
    text.append(f"  {len(members)} seeds (mean line, dotted min-max) · val {cells['val loss']} · "
                f"val bpb {cells['val bpb']} (mean ± sd; t: the test)")


def legend_text(runs: list[ComparedRun], smoothing: float) -> Text:
    """One line per run: its colour, name, preset, how far it got and its losses; the best val marked. The
    runs of a seed group (fwtui.compared_runs.seed_groups) share one line: the group's figures as mean ± sd."""
    best = min((r.best_val for r in runs if r.best_val is not None), default=None)
    groups = {id(members[0]): (members, group) for members, group in zip(seed_groups(runs), summary_groups(runs))
              if len(members) > 1}
    grouped = {id(r) for members, _ in groups.values() for r in members}
    text = Text()
    for run in runs:
        if id(run) in grouped and id(run) not in groups:
            continue  # on its group's line
        if text:
            text.append("\n")
        if id(run) in groups:
            _group_line(text, *groups[id(run)])
            continue
        text.append("━━ ", style=PALETTE[run.slot][1])
        text.append(run.name, style=f"bold {PALETTE[run.slot][1]}")
        if run.reading or run.problem:
            text.append("  reading..." if run.reading else f"  {run.problem}", style="" if run.reading else "red")
            continue
        parts = [run.preset or "preset unknown",
                 "iter unknown" if run.last_iter is None else f"iter {fmt.count(run.last_iter)}",
                 "tokens unknown" if run.tokens_seen is None else f"{fmt.compact(run.tokens_seen)} tokens",
                 f"train {fmt.loss(run.final_train)}", f"val {fmt.loss(run.final_val)}"]
        if run.final_val_bpb is not None:
            parts.append(f"val {fmt.bpb(run.final_val_bpb)}")
        if run.best_val is not None:
            parts.append(f"best val {fmt.loss(run.best_val)}" + (" (lowest)" if run.best_val == best else ""))
        text.append("  " + " · ".join(parts))
    # Always one line (`m` never changes the legend's height: a new height is a new chart size, plotted twice).
    if smoothing:
        text.append(f"\ntrain lines are the EMA {smoothing:g} of the logged losses, debiased; the figures are raw")
    else:
        text.append("\ntrain lines are the logged losses (m smooths them: a debiased EMA)", style="dim")
    return text


class SeedTable(ModalScreen[None]):
    """The seed groups' comparison as text; Esc, q or t closes it."""

    DEFAULT_CSS = """
    SeedTable { align: center middle; }
    SeedTable > VerticalScroll { width: 110; max-width: 95%; height: auto; max-height: 90%;
                                 border: thick $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "close", "close"), Binding("q", "close", "close", show=False),
                Binding("t", "close", "close", show=False)]

    def __init__(self, groups: list[SeedGroup], reading: int = 0) -> None:
        super().__init__()
        lines = summary_lines(groups) if groups else ["no run read yet: nothing to compare"]
        if reading:
            lines.append(f"({reading} run{'s' if reading != 1 else ''} still being read: not in the table yet)")
        self.text = "\n".join(lines)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.text, id="seed-table", markup=False)
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
