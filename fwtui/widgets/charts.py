"""The dashboard's two charts (loss, throughput) and the bounded histories they draw from.

Histories are filled on every Step/Eval but drawn at most twice a second by the screen's timer: `add` only
appends, `redraw()` plots. A History thins itself when full (keeps every other point and then takes every
second new one), so a 600k-iteration run stays a few thousand points yet still shows its whole curve.
Markers and labels differ (braille line for train, "o" for val), so the charts read without colour.
"""

from __future__ import annotations

from textual_plotext import PlotextPlot

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


class _Chart(PlotextPlot):
    """A plotext chart plotted from its histories when Textual renders it: on the screen's timer (redraw) or
    on a resize, never once per event. Plotting at render time uses the real size, so the legend choice fits."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.can_focus = False

    def redraw(self) -> None:
        self.refresh()

    def render(self):
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.draw(plt, legend=self.size.width >= LEGEND_MIN_WIDTH)
        return super().render()

    def draw(self, plt, legend: bool) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def iteration_ticks(plt, xs: list[float]) -> None:
        """Whole iterations on the x axis (plotext would print 47.5 for a range of 190)."""
        if xs:
            lo, hi = int(xs[0]), int(xs[-1])
            plt.xticks(sorted({round(lo + (hi - lo) * k / 4) for k in range(5)}))


class LossChart(_Chart):
    """Train loss per logged step (braille line) and val loss at each eval ("o" points), nats/token."""

    def __init__(self, train: History, val: History, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.train, self.val = train, val
        self.border_title = "loss (nats/token) by iter"

    def draw(self, plt, legend: bool) -> None:
        most = max(20, self.size.width * 2)
        if len(self.train) or self.train.latest:
            xs, ys = self.train.series(most)
            plt.plot(xs, ys, marker="braille", color="cyan", label="train" if legend else None)
            self.iteration_ticks(plt, xs)
        if len(self.val) or self.val.latest:
            xs, ys = self.val.series(most)
            plt.scatter(xs, ys, marker="o", color="orange", label="val" if legend else None)
        if not (self.train.latest or self.val.latest):
            plt.title("waiting for the first step")


class ThroughputChart(_Chart):
    """MFU in % of the card's peak per logged step, or tokens/s when the peak (so MFU) is unknown."""

    def __init__(self, mfu: History, tokens: History, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.mfu, self.tokens = mfu, tokens
        self.border_title = "throughput by iter"

    @property
    def shows_mfu(self) -> bool:
        return self.mfu.latest is not None

    def draw(self, plt, legend: bool) -> None:
        most = max(20, self.size.width * 2)
        history, label = (self.mfu, "MFU %") if self.shows_mfu else (self.tokens, "tok/s")
        self.border_title = f"{label} by iter"
        if history.latest is None:
            plt.title("waiting for the first step")
            return
        xs, ys = history.series(most)
        plt.plot(xs, ys, marker="braille", color="green", label=label if legend else None)
        self.iteration_ticks(plt, xs)
