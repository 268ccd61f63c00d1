"""Reference lines on a chart (trainer.observe.references, read from presets/references.toml): a level as a
dotted line across the chart, named at its left end; a reported loss curve, for the run's preset, as a
dotted line through its val points, named at its last point. Drawn only inside the x span of the run's
own points (a 100-iteration run is not squeezed to fit a 6,000-iteration curve); a curve has no wall time,
so it is left out on that axis. Grey: they never take a run's colour."""

from __future__ import annotations

import math

from trainer.errors import ConfigError
from trainer.observe.references import References, load_references

COLOUR = "gray"


def references() -> References:
    """The shipped references; none when the file is unreadable (a chart never fails for its references)."""
    try:
        return load_references()
    except ConfigError:
        return References()


def draw_references(plt, chart: str, presets: list[str | None], axis: str, log: bool,
                    span: tuple[float, float], div: float = 1.0) -> list[float]:
    """Draw `chart`'s lines, and the curves of these presets, over `span` (x in the axis's raw units);
    x divided by `div` as the run's points were. The y values drawn (log10 when `log`), for the axes."""
    found = references()
    x0, x1 = span
    drawn: list[float] = []

    def y_of(value: float) -> float | None:
        if not log:
            return value
        return math.log10(value) if value > 0 else None

    for line in found.lines_for(chart):
        y = y_of(line.value)
        if y is None:
            continue
        plt.plot([x0 / div, x1 / div], [y, y], marker="dot", color=COLOUR)
        plt.text(line.label, x0 / div, y, color=COLOUR, alignment="left")
        drawn.append(y)
    seen = set()
    for preset in presets:
        for curve in found.curves_for(chart, preset):
            if curve.label in seen:
                continue
            seen.add(curve.label)
            xs = curve.xs(axis)
            if xs is None:
                continue
            points = [(x / div, y_of(v)) for x, v in zip(xs, curve.val) if x <= x1 and y_of(v) is not None]
            if not points:
                continue
            plt.plot([p[0] for p in points], [p[1] for p in points], marker="dot", color=COLOUR)
            plt.text(curve.label, points[-1][0], points[-1][1], color=COLOUR, alignment="right")
            drawn += [p[1] for p in points]
    return drawn


def reference_sources(chart: str, presets: list[str | None]) -> list[str]:
    """One line per reference the chart would draw: its label and source (a legend or help text)."""
    found = references()
    lines = [f"{r.label}: {r.source}" for r in found.lines_for(chart)]
    names = {c.label: c for p in presets for c in found.curves_for(chart, p)}
    return lines + [f"{c.label}: {c.source}" for c in names.values()]
