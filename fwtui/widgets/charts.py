"""The dashboard's two charts (loss, throughput) and the bounded histories they draw from.

Histories are filled on every Step/Eval but drawn at most twice a second by the screen's timer (every two
seconds or more in steady training, see fwtui.refresh_budget): `add` only appends, `redraw()` plots and
repaints the lines that changed. A History thins itself when full (keeps every other point and then takes
every second new one), so a 600k-iteration run stays a few thousand points yet still shows its whole curve.
Markers and labels differ (braille line for train, "o" for val), so the charts read without colour.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.visual import Visual, visualize
from textual_plotext import PlotextPlot

from fwtui.widgets.reference_lines import draw_references
from fwtui.chart_math import (SMOOTHING_FACTORS, AxisMap, Ema, axis_scale, log_tick_label, log_ticks, log_y,
                               tick_values,
                              smoothing_label)

HISTORY_POINTS = 2000
"""Most points a chart keeps; a thinned history spans the whole run at this size."""

LEGEND_MIN_WIDTH = 40
"""Narrower than this (80-column terminals) the legend would cover the curve, so it is left out."""


class History:
    """(x, y) points, at most `maxlen`, evenly thinned over the whole run; `latest` is never thinned away."""

    def __init__(self, maxlen: int = HISTORY_POINTS) -> None:
        self.maxlen = max(4, maxlen)
        self.points: list[tuple[float, float]] = []
        self.latest: tuple[float, float] | None = None
        self._stride = 1  # keep one of every `_stride` points offered
        self._offered = 0

    def add(self, x: float, y: float) -> None:
        self.latest = (x, y)
        self._offered += 1
        if (self._offered - 1) % self._stride:
            return
        self.points.append((x, y))
        if len(self.points) >= self.maxlen:
            self.points = self.points[::2]
            self._stride *= 2

    def clear(self) -> None:
        self.points.clear()
        self.latest = None
        self._stride, self._offered = 1, 0

    def __len__(self) -> int:
        return len(self.points)

    def series(self, most: int) -> tuple[list[float], list[float]]:
        """At most `most` points to draw (about two per column), always ending at the latest one."""
        pts = self.points
        if len(pts) > most > 0:
            step = -(-len(pts) // most)  # ceil: stay within `most`
            pts = pts[::step]
        if self.latest is not None and (not pts or pts[-1] != self.latest):
            pts = [*pts, self.latest]
        return [p[0] for p in pts], [p[1] for p in pts]


class ChartView:
    """What the chart keys chose, shared by every chart of a screen: `x` the axis, `l` log y, `m` the EMA, `r`
    the loss charts' reference lines (fwtui.widgets.reference_lines; HellaSwag's chart always shows its own)."""

    def __init__(self) -> None:
        self.x_axis = "iter"  # one of fwtui.chart_math.X_AXES
        self.log_y = False
        self.smoothing = 0.0  # the EMA's beta, one of SMOOTHING_FACTORS; 0 = raw
        self.references = False

    def describe(self) -> str:
        """One line for a header or a notification: 'x: tokens · y: log · EMA 0.9 (debiased)' (· references)."""
        refs = " · references" if self.references else ""
        return f"x: {self.x_axis} · y: {'log' if self.log_y else 'linear'} · {smoothing_label(self.smoothing)}{refs}"


class LossCurves:
    """One run's loss curves: train per logged step, its debiased EMA for each factor `m` offers (fed every
    step, so thinning the history never changes what the average saw), val per eval, and the steps' tokens
    and wall seconds (the x axes other than iterations)."""

    def __init__(self, maxlen: int = HISTORY_POINTS) -> None:
        self.train, self.val = History(maxlen), History(maxlen)
        self.smoothed = {beta: History(maxlen) for beta in SMOOTHING_FACTORS if beta}
        self._emas = {beta: Ema(beta) for beta in self.smoothed}
        self.axis = AxisMap()
        self.preset: str | None = None
        """The run's preset (its RunStarted config's name): which reported curves are its references."""

    def add_step(self, it: float, loss: float, tokens_seen: float, elapsed_seconds: float) -> None:
        self.train.add(it, loss)
        for beta, ema in self._emas.items():
            value = ema.add(loss)
            if value is not None:
                self.smoothed[beta].add(it, value)
        self.axis.add(it, tokens_seen, elapsed_seconds)

    def add_eval(self, it: float, val_loss: float) -> None:
        self.val.add(it, val_loss)

    def clear(self) -> None:
        for history in (self.train, self.val, *self.smoothed.values()):
            history.clear()
        self._emas = {beta: Ema(beta) for beta in self.smoothed}
        self.axis.clear()

    def train_series(self, most: int, smoothing: float) -> tuple[list[float], list[float]]:
        history = self.smoothed.get(smoothing, self.train)
        return history.series(most)


NICE_STEPS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
"""Axis spans are rounded up to one of these × a power of ten, so the axes stay put while points arrive."""


def nice_ceil(value: float) -> float:
    """The smallest NICE_STEPS × 10^k at or above `value` (> 0): 1,130 -> 1,200; 0.37 -> 0.4."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in NICE_STEPS:
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10.0 * power


def x_limits(first: float, last: float) -> tuple[float, float]:
    """From the first iteration to a rounded-up end: the curve fills 2/3 of the width or more and the axis
    moves only when the run crosses the end (not on every new point, which would repaint the whole chart)."""
    return first, first + nice_ceil(max(last - first, 1.0))


def y_limits(low: float, high: float) -> tuple[float, float]:
    """The values' range widened to whole tenths of its rounded-up span: a new point inside it moves no axis."""
    span = high - low
    unit = nice_ceil(span if span > 0 else max(abs(high) * 0.1, 1e-6)) / 10
    lo, hi = math.floor(low / unit) * unit, math.ceil(high / unit) * unit
    return (lo, hi) if hi > lo else (lo - unit, hi + unit)


def tick_label(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) and abs(value) >= 1000 else f"{value:g}"


class _Chart(PlotextPlot):
    """A plotext chart plotted from its histories on the screen's timer (`redraw`) or on a resize, never once
    per event. Plotting uses the real size, so the legend choice fits.

    `redraw` plots into text, compares it line by line with what is on screen and repaints only the lines
    that changed (a new point at the right end changes a few), or nothing when the picture is the same: a
    full chart is 5-9 KB of escape codes, too much to send every time on a thin link (issue 5). The chart
    is drawn line by line (Textual's line API, `render_line`), and only a changed line is converted from
    plotext's ANSI text to a Strip: converting the whole picture on every redraw cost the UI thread as much
    as plotting it (issue 4: the app's CPU time is taken from a CPU run)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.can_focus = False
        self._lines: list[str] = []  # the plot's ANSI text, line by line, as last shown
        self._strips: list[Strip | None] = []  # those lines as Strips, None until a line is first drawn
        self._key: tuple | None = None  # (size, themes) the text was plotted for
        self._title: str | None = None

    def set_title(self, title: str) -> None:
        if title != self._title:  # setting border_title repaints the whole widget, even to the same value
            self._title = title
            self.border_title = title

    def _plot_key(self) -> tuple:
        return (self.size, self.app.theme, self.theme)

    def _plot_ansi(self) -> str:
        """Plot the histories at the widget's size; the plot as ANSI text."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.draw(plt, legend=self.size.width >= LEGEND_MIN_WIDTH)
        # What PlotextPlot.render does before building (size twice: see textual-plotext issue 5; theme).
        plt.plotsize(self.size.width, self.size.height)
        plt._set_size(self.size.width, self.size.height)
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        return plt.build()

    def _show(self, key: tuple, lines: list[str], changed: list[int] | None) -> None:
        """Keep `lines` as the picture; forget the Strips of the changed lines (all when None)."""
        if changed is None:
            self._strips = [None] * len(lines)
        else:
            for y in changed:
                self._strips[y] = None
        self._key, self._lines = key, lines

    def redraw(self) -> bool:
        """Plot again and repaint what changed; False when the picture is the same as on screen."""
        if not self.is_mounted or not self.size.area:
            self.refresh()  # not laid out yet: render_line plots once it is
            return True
        key, lines = self._plot_key(), self._plot_ansi().split("\n")
        if key != self._key or len(lines) != len(self._lines):
            changed = None  # another size or theme: all of it
        else:
            changed = [y for y, (new, old) in enumerate(zip(lines, self._lines)) if new != old]
            if not changed:
                return False
        self._show(key, lines, changed)
        if changed is None:
            self.refresh()
        else:
            width = self.size.width
            self.refresh(*(Region(0, y, width, 1) for y in changed))
        return True

    def render_line(self, y: int) -> Strip:
        key = self._plot_key()
        if self._key != key:  # first paint, resize, theme change
            self._show(key, self._plot_ansi().split("\n"), None)
        if not 0 <= y < len(self._lines):
            return Strip.blank(self.size.width, self.visual_style.rich_style)
        strip = self._strips[y]
        if strip is None:
            # One line the way Widget.render would draw the whole Text (Visual.to_strips at the widget's style).
            visual = visualize(self, Text.from_ansi(self._lines[y]), markup=False)
            strip = self._strips[y] = Visual.to_strips(self, visual, self.size.width, 1, self.visual_style)[0]
        return strip

    def render(self):  # what a Widget would draw whole; render_line is what Textual calls
        return Text.from_ansi("\n".join(self._lines))

    def draw(self, plt, legend: bool) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def axes(plt, xs: list[float], ys: list[float], *, also: list[float] = (), log: bool = False,
             whole_x: bool = True) -> None:
        """Rounded axis limits (see x_limits, y_limits) and round ticks, whole iterations on x (plotext would
        print 47.5 for a range of 190). `also`: more y values to fit (another series). `log`: the y values
        are log10 of the quantity and the ticks say the quantity. `whole_x`: ticks at whole numbers."""
        if not xs:
            return
        x0, x1 = x_limits(xs[0], xs[-1]) if whole_x else (xs[0], xs[0] + nice_ceil(max(xs[-1] - xs[0], 1e-9)))
        plt.xlim(x0, x1)
        ticks = sorted({round(x) for x in tick_values(x0, x1)}) if whole_x else tick_values(x0, x1)
        plt.xticks(ticks, [tick_label(x) for x in ticks])
        values = [y for y in (*ys, *also) if math.isfinite(y)]
        if values:
            y0, y1 = y_limits(min(values), max(values))
            plt.ylim(y0, y1)
            ticks = log_ticks(y0, y1) if log else tick_values(y0, y1)
            plt.yticks(ticks, [log_tick_label(y) if log else tick_label(y) for y in ticks])


def place(view: ChartView, axis: AxisMap | None, series: list[tuple[list[float], list[float]]], *,
          scale: bool = True) -> tuple[list[tuple[list[float], list[float]]], str]:
    """The series (iterations, values) on the view's axes: x converted (tokens, seconds) and scaled to
    readable units by the largest x of all of them (scale=False: not scaled, for a caller that scales
    several runs alike), y as log10 when log y is on; and the x axis's label."""
    placed = []
    for xs, ys in series:
        if axis is not None:
            xs = axis.convert(xs, view.x_axis)
            ys = ys if xs or not ys else []  # an axis the run cannot be drawn on (FLOPs unknown): no points
        if view.log_y:
            xs, ys = log_y(xs, ys)
        placed.append((xs, ys))
    last = max((max(xs) for xs, _ in placed if xs), default=0.0)
    div, label = axis_scale(view.x_axis if axis is not None else "iter", last)
    if div != 1.0 and scale:
        placed = [([x / div for x in xs], ys) for xs, ys in placed]
    return placed, label


def view_suffix(view: ChartView, smoothing: bool = False) -> str:
    """What a chart's title adds for a view other than the default (so the default titles stay as they were)."""
    parts = ["log y"] if view.log_y else []
    if smoothing and view.smoothing:
        parts.append(smoothing_label(view.smoothing))
    return "".join(f" · {p}" for p in parts)


class LossChart(_Chart):
    """Train loss per logged step (braille line; the EMA when `m` chose one) and val loss at each eval ("o"
    points), nats/token, on the x axis `x` chose."""

    def __init__(self, curves: LossCurves, view: ChartView | None = None, *,
                 id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.curves, self.view = curves, view or ChartView()
        self.set_title("loss (nats/token) by iter")

    def _plot_key(self) -> tuple:
        return (*super()._plot_key(), self.view.describe())

    def draw(self, plt, legend: bool) -> None:
        most = max(20, self.size.width * 2)
        view = self.view
        (train_x, train_y), (val_x, val_y) = place(view, self.curves.axis, [
            self.curves.train_series(most, view.smoothing), self.curves.val.series(most)], scale=False)[0]
        also = list(val_y)
        if view.references and (train_x or val_x):
            xs = [*train_x, *val_x]
            div, _ = axis_scale(view.x_axis, max(xs))
            also += draw_references(plt, "loss", [self.curves.preset], view.x_axis, view.log_y,
                                    (min(xs), max(xs)), div)
        else:
            div, _ = axis_scale(view.x_axis, max([*train_x, *val_x], default=0.0))
        train_x, val_x = [x / div for x in train_x], [x / div for x in val_x]
        if train_x:
            label = "train" if not view.smoothing else f"train EMA {view.smoothing:g}"
            plt.plot(train_x, train_y, marker="braille", color="cyan", label=label if legend else None)
        if val_x:
            plt.scatter(val_x, val_y, marker="o", color="orange", label="val" if legend else None)
        if train_x or val_x:
            xs = sorted((*train_x, *val_x))
            self.axes(plt, xs, train_y, also=also, log=view.log_y, whole_x=view.x_axis == "iter")
        else:
            plt.title("waiting for the first step")

    def redraw(self) -> bool:
        _, label = place(self.view, self.curves.axis, [([self.curves.train.latest[0]], [1.0])]
                         if self.curves.train.latest else [])
        self.set_title(f"loss (nats/token) by {label}{view_suffix(self.view, smoothing=True)}")
        return super().redraw()


class ThroughputChart(_Chart):
    """MFU in % of the card's peak per logged step, or tokens/s when the peak (so MFU) is unknown."""

    def __init__(self, mfu: History, tokens: History, *, id: str | None = None,  # noqa: A002
                 view: ChartView | None = None, axis: AxisMap | None = None) -> None:
        super().__init__(id=id)
        self.mfu, self.tokens = mfu, tokens
        self.view, self.axis = view or ChartView(), axis
        self.set_title("throughput by iter")

    @property
    def shows_mfu(self) -> bool:
        return self.mfu.latest is not None

    def _plot_key(self) -> tuple:
        return (*super()._plot_key(), self.view.describe())

    def draw(self, plt, legend: bool) -> None:
        most = max(20, self.size.width * 2)
        history, label = (self.mfu, "MFU %") if self.shows_mfu else (self.tokens, "tok/s")
        if history.latest is None:
            plt.title("waiting for the first step")
            return
        (xs, ys), = place(self.view, self.axis, [history.series(most)])[0]
        plt.plot(xs, ys, marker="braille", color="green", label=label if legend else None)
        self.axes(plt, xs, ys, log=self.view.log_y, whole_x=self.view.x_axis == "iter")

    def redraw(self) -> bool:
        # The title says which series is drawn; set here, not while rendering (setting it asks for a repaint).
        history = self.mfu if self.shows_mfu else self.tokens
        _, axis = place(self.view, self.axis, [([history.latest[0]], [1.0])] if history.latest else [])
        self.set_title(f"{'MFU %' if self.shows_mfu else 'tok/s'} by {axis}{view_suffix(self.view)}")
        return super().redraw()
