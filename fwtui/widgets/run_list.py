"""The setup screen's list of runs to continue: stopped, failed or killed runs with a checkpoint.

Rows come from trainer.runs.listing.scan_runs (what `fwtui runs` lists). A run is offered for continuing when it has
a checkpoint, is not running, and has iterations left; continuing it is `fwtui train --out RUN --resume` in the
app. A run that is running elsewhere is shown with `fwtui attach RUN`, and a run whose checkpoint files are
damaged with one line saying so; neither can be continued from here. Finished runs are left out: they have
nothing left to train (`fwtui --out RUN --resume --set max_iters=N` extends one).

Nothing here imports torch: a damaged checkpoint is told by its file, not by loading it (torch.save writes
a zip archive, and a complete one ends with the zip directory that zipfile.is_zipfile looks for).
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from fwtui.format import duration, loss
from trainer.runs.listing import RunInfo, is_running, scan_runs

CKPT_FILE, PREV_FILE = "ckpt.pt", "ckpt.prev.pt"  # trainer.train.checkpoint's names (that module imports torch)


@dataclass(frozen=True)
class RunChoice:
    """One row: the run, whether Enter continues it, and the line that says where it stands."""

    path: Path
    name: str
    continuable: bool
    line: str
    """e.g. "stopped at iter 40 of 200 · val 5.12 · 2h05m ago"."""


def checkpoint_problem(run_dir: Path) -> str | None:
    """None when RUN holds a checkpoint that is a complete file (ckpt.pt, else ckpt.prev.pt, which the engine
    falls back to); else one line naming the problem and what to do."""
    files = [run_dir / name for name in (CKPT_FILE, PREV_FILE) if (run_dir / name).is_file()]
    if not files:
        return f"no checkpoint in {run_dir}: nothing to continue; train it with `fwtui train --out {run_dir}`"
    if any(zipfile.is_zipfile(f) for f in files):
        return None
    names = " and ".join(f.name for f in files)
    return (f"damaged checkpoint: {names} in {run_dir} {'is' if len(files) == 1 else 'are'} not a complete "
            "checkpoint file (cut short?); it cannot be continued, start a new run")


def _ago(epoch_seconds: float | None, now: float) -> str:
    return "" if epoch_seconds is None else f"{duration(now - epoch_seconds)} ago"


def _how_it_ended(run: RunInfo) -> str:
    if run.status == "failed":
        return "failed"
    if run.problem.startswith("ended without an end event"):
        return "killed"
    return "stopped"


def describe(run: RunInfo, now: float | None = None) -> RunChoice | None:
    """The row for one run, or None when it has nothing to continue (finished, or never checkpointed)."""
    now = time.time() if now is None else now
    of = f" of {run.max_iters:,}" if run.max_iters else ""
    at = f"iter {run.iteration:,}{of}" if run.iteration is not None else "no step logged"
    if run.status == "running" or is_running(run.path):  # the lock is the truth: resumed elsewhere, say
        return RunChoice(run.path, run.name, False,
                         f"running elsewhere · {at} · watch it with `fwtui attach {run.path}`")
    has_checkpoint = (run.path / CKPT_FILE).is_file() or (run.path / PREV_FILE).is_file()
    if not has_checkpoint:
        return None
    if run.status == "finished" or (run.iteration is not None and run.max_iters
                                    and run.iteration >= run.max_iters):
        return None
    problem = checkpoint_problem(run.path)
    if problem is not None:
        return RunChoice(run.path, run.name, False, problem)
    parts = [f"{_how_it_ended(run)} at {at}"]
    if run.checkpoint_iter is not None and run.checkpoint_iter != run.iteration:
        parts.append(f"continues from iter {run.checkpoint_iter:,} (last checkpoint)")
    if run.val_loss is not None:
        parts.append(f"val {loss(run.val_loss)}")
    elif run.train_loss is not None:
        parts.append(f"train {loss(run.train_loss)}")
    ago = _ago(run.last_write, now)
    if ago:
        parts.append(ago)
    if not (run.path / CKPT_FILE).is_file() or not zipfile.is_zipfile(run.path / CKPT_FILE):
        parts.append("ckpt.pt missing or damaged: continues from ckpt.prev.pt")
    return RunChoice(run.path, run.name, True, " · ".join(parts))


def list_run_choices(runs_dir: Path) -> list[RunChoice]:
    """The rows for every run in `runs_dir`, newest first; [] when the directory is missing or holds none."""
    if not Path(runs_dir).is_dir():
        return []
    rows = [describe(run) for run in scan_runs(runs_dir) if run.status != "unreadable"]
    return [row for row in rows if row is not None]


def run_row(choice: RunChoice) -> Text:
    """Two lines, each cut at the right edge (app.tcss), never wrapped mid-word:
    `▶ cpu-tiny-20250101-120000` then `  stopped at iter 40 of 200 · val 5.12 · 2h05m ago`."""
    row = Text(no_wrap=True, overflow="ellipsis")
    row.append("▶ " if choice.continuable else "  ", style="green")
    row.append(choice.name, style="bold" if choice.continuable else "dim")
    row.append(f"\n  {choice.line}", style="" if choice.continuable else "yellow")
    return row


class RunList(OptionList):
    """The rows; Enter on one posts Chosen (the screen continues it, or says why it cannot)."""

    class Chosen(Message):
        def __init__(self, choice: RunChoice) -> None:
            super().__init__()
            self.choice = choice

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)
        self.choices: list[RunChoice] = []
        self.border_title = "continue a run (Enter)"

    def show(self, choices: list[RunChoice]) -> None:
        self.choices = list(choices)
        self.clear_options()
        self.add_options([Option(run_row(c), id=str(i)) for i, c in enumerate(choices)])
        if choices:
            self.highlighted = 0

    @property
    def highlighted_choice(self) -> RunChoice | None:
        if self.highlighted is None or not 0 <= self.highlighted < len(self.choices):
            return None
        return self.choices[self.highlighted]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        choice = self.highlighted_choice
        if choice is not None:
            self.post_message(self.Chosen(choice))
