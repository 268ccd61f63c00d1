"""Compare runs: their loss curves overlaid, a stable colour per run, and a legend with each run's figures.

Each run is read once from its log (a run directory's events.jsonl, or a nanoGPT stdout log, exactly as
`fwtui view` reads it) into LossCurves: a snapshot of the log when it was read. The first frame comes first:
the screen shows every run as "reading..." in the legend (its name, so its colour, is known from its path),
and one thread worker reads the logs one after another (5 runs x 10,000 steps: 1.1 to 3 s on this project's
2-core machine, by its load) and posts each run as it is read (RunRead); its curve then appears. The chart keys of fwtui.screens.chart_keys (x axis,
log y, EMA of the train loss) act on what has arrived and never wait on the reading; `a` adds runs from the
runs directory, `q` goes back (or quits `fwtui compare`). Train losses are lines, val losses "o" points, in
the run's colour.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Callable, Sequence

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.strip import Strip
from textual.worker import get_current_worker
from textual.widgets import Footer, SelectionList, Static

from fwtui import format as fmt
from fwtui.chart_math import PALETTE, axis_scale, band
from fwtui.compared_runs import (ComparedRun, Reader, assign_colours, load_compared, seed_groups, summary_groups,
                                 waiting_run)
from fwtui.screens.chart_keys import CHART_BINDINGS, ChartKeys
from fwtui.screens.compare_legend import SeedTable, legend_text
from fwtui.widgets.charts import ChartView, _Chart, place
from fwtui.widgets.plot_strips import plot_line_strip
from fwtui.widgets.reference_lines import draw_references
from trainer.errors import FwtuiError


PICTURES_KEPT = 128
"""Pictures the compare chart keeps: every view (4 axes x 2 scales x 4 EMA factors x references on/off) at
two sizes."""
LINE_STRIPS_KEPT = 4000
"""Converted lines it keeps (a 40-line chart: those pictures' lines)."""


class CompareChart(_Chart):
    """Every run's train loss (braille line) and val loss ("o"), in its colour, on one pair of axes."""

    def __init__(self, runs: list[ComparedRun], view: ChartView, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.runs, self.view = runs, view
        # The runs are snapshots, so a picture depends only on its plot key: a view seen before (x pressed
        # four times comes back to iterations) is shown again without plotting or converting a line.
        self._pictures: dict[tuple, tuple[str, str | None]] = {}  # plot key -> (ANSI picture, title)
        self._line_strips: dict[tuple, Strip] = {}  # (size and themes, ANSI line) -> its Strip

    def _plot_key(self) -> tuple:
        read = sum(not r.reading for r in self.runs)  # a run that arrives is a new picture (runs only arrive)
        return (*super()._plot_key(), self.view.describe(), len(self.runs), read)

    def _plot_ansi(self) -> str:
        key = self._plot_key()
        if key not in self._pictures:
            if len(self._pictures) >= PICTURES_KEPT:
                self._pictures.clear()
            picture = super()._plot_ansi()
            self._pictures[key] = (picture, self._title)  # draw() set the title for this picture
        picture, title = self._pictures[key]
        if title is not None:
            self.set_title(title)
        return picture

    def render_line(self, y: int) -> Strip:
        look = (self.size, self.app.theme, self.theme)  # what a line's Strip depends on besides its text
        if self._key == self._plot_key() and 0 <= y < len(self._lines) and self._strips[y] is None:
            line = self._lines[y]
            self._strips[y] = self._line_strips.get((look, line)) or plot_line_strip(
                line, self.visual_style.rich_style, self.size.width)  # None: the general way, in super()
        strip = super().render_line(y)
        if 0 <= y < len(self._lines):
            if len(self._line_strips) >= LINE_STRIPS_KEPT:
                self._line_strips.clear()
            self._line_strips[(look, self._lines[y])] = strip
        return strip

    def placed(self, most: int) -> tuple[list[tuple[ComparedRun, list, list, list, list]], str, float]:
        """Per run (run, train xs, train ys, val xs, val ys) on the view's axes, x scaled alike for all; the
        axis label and the divisor x was scaled by."""
        rows, last = [], 0.0
        for run in self.runs:
            series = [run.curves.train_series(most, self.view.smoothing), run.curves.val.series(most)]
            (tx, ty), (vx, vy) = place(self.view, run.curves.axis, series, scale=False)[0]
            rows.append((run, tx, ty, vx, vy))
            last = max(last, *tx, *vx, 0.0)
        div, label = axis_scale(self.view.x_axis, last)
        if div != 1.0:
            rows = [(r, [x / div for x in tx], ty, [x / div for x in vx], vy) for r, tx, ty, vx, vy in rows]
        return rows, label, div

    def draw(self, plt, legend: bool) -> None:
        # Each run gets at most 2 points per column over all runs: 5 runs x 10,000 steps plot in 25-50 ms (the
        # canvas, not the points, is most of it).
        most = max(20, self.size.width * 2 // max(1, len(self.runs)))
        rows, label, div = self.placed(most)
        by_run = {id(row[0]): row for row in rows}
        # Seeds of one config: their mean as the line (val: "o" at the mean), min and max as dotted edges.
        groups = [g for g in seed_groups(self.runs) if len(g) > 1]
        banded = {id(r) for g in groups for r in g}
        all_x, all_y = [], []
        for members in groups:
            colour = PALETTE[members[0].slot][0]
            mine = [by_run[id(r)] for r in members]
            tx, mean, low, high = band([(row[1], row[2]) for row in mine])
            vx, vmean, vlow, vhigh = band([(row[3], row[4]) for row in mine])
            if tx:
                plt.plot(tx, low, marker="dot", color=colour)
                plt.plot(tx, high, marker="dot", color=colour)
                plt.plot(tx, mean, marker="braille", color=colour)
            if vx:
                plt.scatter(vx, vmean, marker="o", color=colour)
            all_x += [*tx, *vx]
            all_y += [*low, *high, *vlow, *vhigh]
        for run, tx, ty, vx, vy in rows:
            if id(run) in banded:
                continue
            colour = PALETTE[run.slot][0]
            if tx:
                plt.plot(tx, ty, marker="braille", color=colour)
            if vx:
                plt.scatter(vx, vy, marker="o", color=colour)
            all_x += [*tx, *vx]
            all_y += [*ty, *vy]
        if not all_x:
            plt.title("reading the runs' logs..." if any(r.reading for r in self.runs) else "no points to draw")
            return
        if self.view.references:
            all_y += draw_references(plt, "loss", [r.preset for r in self.runs], self.view.x_axis, self.view.log_y,
                                     (min(all_x) * div, max(all_x) * div), div)
        self.axes(plt, sorted(all_x), all_y, log=self.view.log_y, whole_x=self.view.x_axis == "iter")
        # The unit of x (M tokens, minutes...) is known only here; set_title repaints only on a change.
        seeds = " · seeds: mean line, dotted min-max" if groups else ""
        self.set_title(f"loss (nats/token) by {label} · lines train, o val{seeds}")


PACE_WAIT_SECONDS = 0.25
"""Longest the reading thread waits for one key's repaint before it goes on anyway."""


class _StopReading(Exception):
    """Raised in the reading thread's pace when its screen is gone."""


class CompareScreen(ChartKeys, Screen[None]):
    DEFAULT_CSS = """
    CompareScreen #compare-head { height: 1; padding: 0 1; }
    CompareScreen #compare-chart { height: 1fr; min-height: 10; border: round $primary; }
    CompareScreen #compare-legend {
        height: auto; max-height: 9; padding: 0 1;
        text-wrap: nowrap; text-overflow: ellipsis;  /* a line a run: wrapped, 5 runs overflowed at 80 columns */
    }
    """
    BINDINGS = [*CHART_BINDINGS, Binding("t", "seed_table", "seeds"), Binding("a", "add_runs", "add runs"),
                Binding("q", "back", "back")]

    class RunRead(Message):
        """From the reading thread: `waiting` was read into `run`, or could not be (`problem`, one line)."""

        def __init__(self, waiting: ComparedRun, run: ComparedRun | None, problem: str | None) -> None:
            super().__init__()
            self.waiting, self.run, self.problem = waiting, run, problem

    def __init__(self, runs: Sequence[ComparedRun | str], *, quit_exits: bool = False,
                 reader: Reader = load_compared) -> None:
        """`runs`: runs already read, or paths, which the screen reads after its first frame with `reader`."""
        super().__init__()
        self.runs = [waiting_run(r) if isinstance(r, str) else r for r in runs]
        assign_colours(self.runs)
        self.chart_view = ChartView()
        self.quit_exits = quit_exits  # `fwtui compare`: q quits; over a dashboard: q goes back to it
        self.reader = reader
        self._shown: tuple[str, Text | None] = ("", None)  # the head and legend on screen
        self.ui_free = threading.Event()
        """Clear while the UI thread redraws for a key: the reading thread waits at its next pace point."""
        self.ui_free.set()

    @property
    def reading(self) -> int:
        """How many runs are still being read."""
        return sum(r.reading for r in self.runs)

    def compose(self) -> ComposeResult:
        yield Static(id="compare-head")
        yield CompareChart(self.runs, self.chart_view, id="compare-chart")
        yield Static(id="compare-legend")
        yield Footer()

    def on_mount(self) -> None:
        self.show_text()
        # Reading starts once the first frame is on screen: the thread would share the CPU (and the GIL) with it.
        self.call_after_refresh(self._read_waiting)

    def _read_waiting(self) -> None:
        waiting = [r for r in self.runs if r.reading]
        if waiting:
            self._read(waiting)

    @work(thread=True, group="compare-read", exit_on_error=False)
    def _read(self, waiting: list[ComparedRun]) -> None:
        """On a thread: read each run in turn and post it; the UI thread swaps it in (on_compare_screen_run_read)."""
        worker = get_current_worker()

        def pace() -> None:
            if worker.is_cancelled:  # the screen was closed (or the app quit): stop reading at once
                raise _StopReading
            self.ui_free.wait(PACE_WAIT_SECONDS)  # a key is being answered: let it have the CPU

        for run in waiting:
            try:
                self.post_message(self.RunRead(run, self.reader(run.path, pace), None))
            except _StopReading:
                return
            except FwtuiError as err:
                self.post_message(self.RunRead(run, None, str(err)))
            except Exception as err:  # noqa: BLE001 - one run that cannot be read never takes the screen down
                self.post_message(self.RunRead(run, None, f"{run.path}: cannot read it ({type(err).__name__}: {err})"))

    def on_compare_screen_run_read(self, message: RunRead) -> None:
        waiting = message.waiting
        index = next((i for i, r in enumerate(self.runs) if r is waiting), None)
        if index is None:
            return  # no longer compared
        if message.run is None:
            waiting.reading, waiting.problem = False, message.problem
        else:  # the name stays what the legend showed while it was read; a seed group takes one colour
            self.runs[index] = dataclasses.replace(message.run, name=waiting.name, slot=waiting.slot)
            assign_colours(self.runs)
        self.redraw_charts_for_view()

    def show_text(self) -> None:
        count = f"{len(self.runs)} run{'s' if len(self.runs) != 1 else ''}"
        if self.reading:
            count += f" ({self.reading} reading...)"
        head, legend = f"compare {count} · {self.chart_view.describe()}", legend_text(self.runs, self.chart_view.smoothing)
        # Static.update lays the screen out again even for the same text: x and l leave the legend as it was
        if head != self._shown[0]:
            self.query_one("#compare-head", Static).update(head)
        if legend != self._shown[1]:
            self.query_one("#compare-legend", Static).update(legend)
        self._shown = (head, legend)

    def _chart_view_changed(self) -> None:
        self.redraw_charts_for_view()  # the head line names the view: no toast to lay out on top (30 ms a key)

    def redraw_charts_for_view(self) -> None:
        self.ui_free.clear()  # the reading thread steps aside until this repaint is out
        self.show_text()
        self.query_one(CompareChart).redraw()
        self.call_after_refresh(self.ui_free.set)

    def on_unmount(self) -> None:
        self.ui_free.set()  # a reading thread never waits on a screen that is gone

    def add_runs(self, paths: list[str]) -> None:
        """Compare these runs too (the ones not here yet): "reading..." at once, their curves as they are read."""
        known = {str(Path(r.path).resolve()) for r in self.runs}
        new = [waiting_run(p) for p in dict.fromkeys(paths) if str(Path(p).resolve()) not in known]
        self.runs.extend(new)
        assign_colours(self.runs)
        self.redraw_charts_for_view()
        if new:
            self._read(new)

    def action_add_runs(self) -> None:
        first = Path(self.runs[0].path) if self.runs else Path("runs")
        runs_dir = first.parent if first.is_dir() or first.name == "events.jsonl" else Path("runs")
        pick_runs(self.app, runs_dir, exclude=[r.path for r in self.runs], then=self.add_runs)

    def action_seed_table(self) -> None:
        """`t`: the runs grouped by config less the seed, mean ± sd and Welch's test (fwtui.seed_summary)."""
        self.app.push_screen(SeedTable(summary_groups(self.runs), reading=self.reading))

    def action_back(self) -> None:
        if self.quit_exits:
            self.app.exit()
        else:
            self.app.pop_screen()


class RunPicker(ModalScreen[list[str]]):
    """Runs of a directory to tick (space or Enter), then `c` compares them; Esc cancels."""

    DEFAULT_CSS = """
    RunPicker { align: center middle; }
    RunPicker > Vertical { width: 90; max-width: 95%; height: auto; max-height: 90%;
                           border: thick $primary; background: $surface; padding: 0 1; }
    RunPicker SelectionList { height: auto; max-height: 20; }
    """
    BINDINGS = [Binding("c", "compare", "compare"), Binding("escape", "cancel", "cancel")]

    def __init__(self, choices: list[tuple[str, str]], where: Path) -> None:
        super().__init__()
        self.choices, self.where = choices, where

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"runs in {self.where}: tick with space, c compares, Esc cancels")
            yield SelectionList[str](*self.choices)
            yield Footer()

    def action_compare(self) -> None:
        self.dismiss(list(self.query_one(SelectionList).selected))

    def action_cancel(self) -> None:
        self.dismiss([])


def pick_runs(app: App, runs_dir: Path, *, exclude: list[str], then: Callable[[list[str]], None]) -> None:
    """Ask which runs of `runs_dir` to add (trainer.runs.listing.scan_runs); hand their paths to `then` (the
    compare screen reads them)."""
    from trainer.runs.listing import scan_runs

    try:
        found = scan_runs(runs_dir)
    except FwtuiError as err:
        app.notify(f"{err}; `fwtui compare RUN RUN...` compares runs anywhere", severity="warning")
        return
    skip = {str(Path(p).resolve()) for p in exclude}
    choices = [(f"{r.name} · {r.status} · iter {fmt.count(r.iteration) if r.iteration is not None else '?'}"
                f" · val {fmt.loss(r.val_loss)}", str(r.path)) for r in found
               if str(r.path.resolve()) not in skip and r.status != "unreadable"]
    if not choices:
        app.notify(f"no other readable runs in {runs_dir} to compare", severity="warning")
        return

    def chosen(paths: list[str] | None) -> None:
        if paths:
            then(paths)

    app.push_screen(RunPicker(choices, runs_dir), chosen)


def open_compare_picker(app: App, current_run_dir: str | None) -> None:
    """The dashboard's `a`: pick runs beside the current one, then compare them with it."""
    current = Path(current_run_dir) if current_run_dir else None
    runs_dir = current.parent if current is not None and current.is_dir() else Path("runs")

    def show(paths: list[str]) -> None:
        # This run first; with nothing logged yet its legend line says so, and the others draw.
        app.push_screen(CompareScreen([str(current), *paths] if current is not None and current.is_dir() else paths))

    pick_runs(app, runs_dir, exclude=[str(current)] if current is not None else [], then=show)


class CompareApp(App[None]):
    """`fwtui compare RUN RUN...`: the compare screen alone; q quits."""

    TITLE = "fwtui compare"

    def __init__(self, runs: Sequence[ComparedRun | str], *,
                 reader: Reader = load_compared) -> None:
        """`runs`: paths (read after the first frame) or runs already read."""
        super().__init__()
        self.compare = CompareScreen(runs, quit_exits=True, reader=reader)
        self.first_frame: Callable[[], None] | None = None
        """A hook bench/compare.py sets: called once the compare screen has drawn its first frame."""

    def on_mount(self) -> None:
        self.push_screen(self.compare)
        if self.first_frame is not None:
            self.compare.call_after_refresh(self.first_frame)
