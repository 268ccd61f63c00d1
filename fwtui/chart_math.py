"""The arithmetic behind the chart keys, with no UI: EMA smoothing (`m`), the x axis (`x`), log y (`l`), colours.

- Smoothing is an exponential moving average over every logged train loss, debiased the way Adam debiases
  its moments: after t values, ema_t = beta * ema_{t-1} + (1 - beta) * y_t with ema_0 = 0, shown as
  ema_t / (1 - beta^t), so the first points are not dragged toward 0. Non-finite losses are skipped (the raw
  curve shows them; one NaN must not poison the average for the rest of the run).
- The x axis is iterations, tokens seen, wall time or training FLOPs (tokens seen x the run's training
  FLOPs per token, 6N + 12LHQT: runs of different sizes compare at equal compute). Steps carry the first
  three; an eval only its iteration, so its tokens and seconds are interpolated linearly between the steps
  around it (`AxisMap`).
- Seeds of one config draw as one band (`band`): the mean of the runs at each x, and their min and max.
- Log y is log10 of the loss (nats/token); values <= 0 have no logarithm and are left out.
- A run's colour comes from its name (CRC-32 into a fixed palette), so the same run has the same colour in
  every compare; when two runs of one compare land on one colour, the later takes the next free one.
"""

from __future__ import annotations

import bisect
import math
import zlib

SMOOTHING_FACTORS = (0.0, 0.6, 0.9, 0.99)
"""What `m` cycles through: the EMA's beta, 0 = off (raw losses)."""

X_AXES = ("iter", "tokens", "time", "flops")
"""What `x` cycles through: iterations, tokens seen, wall time since the run's start, training FLOPs."""


def next_in(options: tuple, current) -> object:
    """The option after `current` in `options`, wrapping round (a key press)."""
    return options[(options.index(current) + 1) % len(options)] if current in options else options[0]


class Ema:
    """A debiased exponential moving average, fed one value at a time."""

    def __init__(self, beta: float) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"EMA factor must be in [0, 1), got {beta}")
        self.beta = beta
        self._biased = 0.0
        self.count = 0  # finite values taken

    def add(self, value: float) -> float | None:
        """Take one value; the debiased average so far, or None while no finite value has come."""
        if math.isfinite(value):
            self.count += 1
            self._biased = self.beta * self._biased + (1.0 - self.beta) * value
        return self.value

    @property
    def value(self) -> float | None:
        if not self.count:
            return None
        return self._biased / (1.0 - self.beta ** self.count)


def ema_series(values: list[float], beta: float) -> list[float | None]:
    """The debiased EMA after each value (None before the first finite one)."""
    ema = Ema(beta)
    return [ema.add(v) for v in values]


def smoothing_label(beta: float) -> str:
    return "EMA off" if beta == 0 else f"EMA {beta:g} (debiased)"


class AxisMap:
    """Iteration -> tokens seen and -> wall seconds, from the steps' (iter, tokens_seen, elapsed_seconds).

    Points arrive in iteration order in a live run; a replay out of order is sorted on first use."""

    def __init__(self) -> None:
        self.iters, self.tokens, self.seconds = [], [], []
        self._sorted = True
        self.flops_per_token: float | None = None
        """Training FLOPs a token (the RunStarted event's): the FLOPs axis; None until known."""

    def add(self, it: float, tokens: float, seconds: float) -> None:
        if self.iters and it <= self.iters[-1]:
            if it == self.iters[-1]:
                return
            self._sorted = False
        self.iters.append(it)
        self.tokens.append(tokens)
        self.seconds.append(seconds)

    def clear(self) -> None:
        flops = self.flops_per_token  # the run's, not its history: kept
        self.__init__()
        self.flops_per_token = flops

    def can_convert(self, axis: str) -> bool:
        """False for the FLOPs axis of a run whose FLOPs per token is unknown."""
        return axis != "flops" or self.flops_per_token is not None

    def _sort(self) -> None:
        if not self._sorted:
            rows = sorted(set(zip(self.iters, self.tokens, self.seconds)))
            self.iters = [r[0] for r in rows]
            self.tokens = [r[1] for r in rows]
            self.seconds = [r[2] for r in rows]
            self._sorted = True

    def convert(self, xs: list[float], axis: str) -> list[float]:
        """Iterations `xs` on `axis` ("iter" leaves them; "tokens"; "time" in seconds; "flops": tokens x
        flops_per_token, [] when that is unknown)."""
        if not self.can_convert(axis):
            return []
        if axis == "iter" or not self.iters:
            return list(xs)
        self._sort()
        ys = self.tokens if axis in ("tokens", "flops") else self.seconds
        scale = self.flops_per_token if axis == "flops" else 1.0
        return [interpolate(self.iters, ys, x) * scale for x in xs]


def interpolate(xs: list[float], ys: list[float], x: float) -> float:
    """y at x on the polyline through (xs, ys) (xs ascending); beyond the ends, the line of the end segment."""
    if len(xs) == 1:
        return ys[0] * (x / xs[0]) if xs[0] else ys[0]  # one point: proportional (tokens, time grow with iter)
    i = min(max(bisect.bisect_left(xs, x), 1), len(xs) - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def axis_scale(axis: str, last: float) -> tuple[float, str]:
    """(divisor, label) so ticks read as small numbers: tokens in K/M/B, time in s/min/h, by the span."""
    if axis == "tokens":
        for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
            if last >= 2 * div:
                return div, f"tokens ({unit})"
        return 1.0, "tokens"
    if axis == "flops":
        for div, unit in ((1e18, "EFLOP"), (1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP")):
            if last >= 2 * div:
                return div, f"training FLOPs ({unit})"
        return 1.0, "training FLOPs"
    if axis == "time":
        if last >= 2 * 3600:
            return 3600.0, "wall time (h)"
        if last >= 2 * 60:
            return 60.0, "wall time (min)"
        return 1.0, "wall time (s)"
    return 1.0, "iter"


def band(series: list[tuple[list[float], list[float]]]) -> tuple[list[float], list[float], list[float],
                                                                 list[float]]:
    """(xs, mean, min, max) of several runs' curves: at the x values of the run with the most points, within
    the span every run covers, each run's value interpolated on its own polyline. Empty runs are left out."""
    runs = [(xs, ys) for xs, ys in series if xs]
    if not runs:
        return [], [], [], []
    start, end = max(xs[0] for xs, _ in runs), min(xs[-1] for xs, _ in runs)
    grid = [x for x in max(runs, key=lambda r: len(r[0]))[0] if start <= x <= end]
    means, lows, highs = [], [], []
    for x in grid:
        values = [interpolate(xs, ys, x) for xs, ys in runs]
        means.append(sum(values) / len(values))
        lows.append(min(values))
        highs.append(max(values))
    return grid, means, lows, highs


def log_y(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """The points with y > 0, y as log10(y); non-positive and non-finite values are dropped."""
    kept = [(x, math.log10(y)) for x, y in zip(xs, ys) if math.isfinite(y) and y > 0]
    return [p[0] for p in kept], [p[1] for p in kept]


TICK_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)
"""Ticks fall on multiples of one of these × a power of ten (plotext would split the range evenly: 41.87)."""


def tick_values(low: float, high: float, most: int = 5) -> list[float]:
    """At most `most` round values within [low, high]: 0-1,500 -> 0, 500, 1,000, 1,500."""
    span = high - low
    if not span > 0 or not math.isfinite(span):
        return [low]
    rough = span / (most - 1)
    power = 10.0 ** math.floor(math.log10(rough))
    step = next(k * power for k in TICK_STEPS if k * power >= rough * (1 - 1e-9))
    first = math.ceil(low / step - 1e-9)
    values = [round(k * step, 12) for k in range(first, math.floor(high / step + 1e-9) + 1)]
    return values or [low]


def log_tick_label(value: float) -> str:
    """A log10 tick shown as the quantity it stands for: log10(4) -> 4, log10(52,000) -> 52k."""
    quantity = 10 ** value
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if quantity >= scale * (1 - 1e-9):
            return f"{quantity / scale:.3g}{suffix}"
    return f"{quantity:.3g}"


LOG_TICK_MANTISSAS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)


def log_ticks(low: float, high: float, most: int = 5) -> list[float]:
    """Ticks for a log10 axis from `low` to `high` (log10 units) at round values of the quantity (2, 3, 4,
    6, 10...), at most `most`, spread evenly over the axis."""
    if not high > low or not math.isfinite(high - low):
        return [low]
    candidates = [math.log10(m * 10.0 ** p) for p in range(math.floor(low) - 1, math.ceil(high) + 1)
                  for m in LOG_TICK_MANTISSAS]
    inside = sorted(c for c in candidates if low - 1e-9 <= c <= high + 1e-9)
    if len(inside) < 3:  # a narrow range (tokens/s between 50k and 56k): round values of the quantity itself
        linear = [math.log10(v) for v in tick_values(10 ** low, 10 ** high, most) if v > 0]
        return linear if len(linear) > len(inside) else inside
    if len(inside) <= most:
        return inside
    step = (len(inside) - 1) / (most - 1)
    return [inside[round(k * step)] for k in range(most)]


PALETTE = (("cyan", "cyan"), ("orange", "dark_orange"), ("green", "green"), ("magenta", "magenta"),
           ("yellow", "yellow"), ("blue", "dodger_blue1"), ("red", "red"), ("gray", "grey50"))
"""(plotext colour, Rich colour) pairs that read apart on dark and light terminals."""


def colour_index(name: str) -> int:
    """The run's own slot in PALETTE: CRC-32 of its name (Python's hash() changes between processes)."""
    return zlib.crc32(name.encode("utf-8")) % len(PALETTE)


def run_colours(names: list[str]) -> list[int]:
    """A PALETTE slot per run: its own when free, else the next free one (all taken: its own again)."""
    taken: set[int] = set()
    slots = []
    for name in names:
        slot = colour_index(name)
        for k in range(len(PALETTE)):
            if (slot + k) % len(PALETTE) not in taken:
                slot = (slot + k) % len(PALETTE)
                break
        taken.add(slot)
        slots.append(slot)
    return slots
