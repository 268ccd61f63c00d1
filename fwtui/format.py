"""Pure formatting helpers for the console: every figure as a short string, "unknown" for None.

No torch, no textual: these take the numbers the engine put in its events and only turn them into text.
Estimates are marked by the caller with `approx()` so the "≈" sits where the reader looks.
"""

from __future__ import annotations

import math
from datetime import datetime, tzinfo

UNKNOWN = "unknown"
APPROX = "≈"


def _missing(value: float | int | None) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def approx(text: str) -> str:
    """Mark an estimate: "≈ 12h27m"; an unknown stays "unknown" (nothing to be approximate about)."""
    return text if text == UNKNOWN else f"{APPROX} {text}"


def duration(seconds: float | None) -> str:
    """Seconds as the two largest units: 45s, 2m05s, 3h13m, 2d04h; "unknown" for None."""
    if _missing(seconds):
        return UNKNOWN
    total = max(0, int(round(seconds)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def seconds(value: float | None) -> str:
    """A short wall time with sub-second precision: 0.31 s, 9.34 s, 14 s; longer ones as duration()."""
    if _missing(value):
        return UNKNOWN
    if value < 1:
        return f"{value:.2f} s"
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.0f} s"
    return duration(value)


def gigabytes(n_bytes: int | float | None, digits: int = 1) -> str:
    """Bytes in decimal GB (what card makers print): 9.8 GB; small values in MB so they are not 0.0 GB."""
    if _missing(n_bytes):
        return UNKNOWN
    if abs(n_bytes) < 100e6:
        return f"{n_bytes / 1e6:.0f} MB"
    return f"{n_bytes / 1e9:.{digits}f} GB"


def gb_number(n_bytes: int | float | None, digits: int = 1) -> str:
    """Bytes in GB without the unit, for "9.8 of 12.0 GB"."""
    if _missing(n_bytes):
        return UNKNOWN
    return f"{n_bytes / 1e9:.{digits}f}"


def count(n: int | float | None) -> str:
    """An exact count with thousands separators: 1,240."""
    if _missing(n):
        return UNKNOWN
    return f"{int(n):,}"


def compact(n: int | float | None) -> str:
    """A count in three significant figures with k/M/B/T: 56.1k, 124M, 1.20B."""
    if _missing(n):
        return UNKNOWN
    value = float(n)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            scaled = value / scale
            if abs(scaled) >= 100:
                return f"{scaled:.0f}{suffix}"
            if abs(scaled) >= 10:
                return f"{scaled:.1f}{suffix}"
            return f"{scaled:.2f}{suffix}"
    return f"{value:.0f}" if value == int(value) else f"{value:.3g}"


def percent(fraction: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: 0.412 -> 41.2%."""
    if _missing(fraction):
        return UNKNOWN
    return f"{fraction * 100:.{digits}f}%"


def tflops(flops_per_sec: float | None) -> str:
    """FLOP/s as TFLOP/s: 58.3 TFLOP/s."""
    if _missing(flops_per_sec):
        return UNKNOWN
    return f"{flops_per_sec / 1e12:.1f} TFLOP/s"


def bpb(value: float | None) -> str:
    """A loss in bits per UTF-8 byte (trainer.data.bpb), three decimals: 1.234 bpb."""
    return UNKNOWN if _missing(value) else f"{value:.3f} bpb"


def loss(value: float | None) -> str:
    """A loss in nats/token, to the precision a loss curve is read at: 4.31."""
    if _missing(value):
        return UNKNOWN
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def rate(per_second: float | None, unit: str) -> str:
    """A throughput: 56.1k tok/s."""
    if _missing(per_second):
        return UNKNOWN
    return f"{compact(per_second)} {unit}/s"


def clock(epoch_seconds: float | None, now: float | None = None, tz: tzinfo | None = None) -> str:
    """A wall-clock time: "04:40" when it falls on the day of `now`, else "Tue 04:40".

    `tz` defaults to the local zone; tests pass timezone.utc so the text does not depend on the machine.
    """
    if _missing(epoch_seconds):
        return UNKNOWN
    zone = tz if tz is not None else datetime.now().astimezone().tzinfo
    moment = datetime.fromtimestamp(epoch_seconds, zone)
    if now is not None and datetime.fromtimestamp(now, zone).date() == moment.date():
        return moment.strftime("%H:%M")
    return moment.strftime("%a %H:%M")


def bar(fraction: float | None, width: int) -> str:
    """A text gauge that reads without colour: ████████░░░░ (full blocks done, light shade to go)."""
    width = max(1, width)
    if _missing(fraction):
        return "░" * width
    filled = int(round(min(1.0, max(0.0, fraction)) * width))
    return "█" * filled + "░" * (width - filled)


LINE_BREAK = "⏎"
_ONE_LINE = {**{c: " " for c in range(32)}, ord("\n"): LINE_BREAK, ord("\r"): None, 0x7F: " "}


def one_line(text: str) -> str:
    """Text on one line, quoted, as written: each line break shown as ⏎, other control characters as spaces,
    backslashes and quotes left alone (a repr() doubles every backslash of a code sample)."""
    return "“" + text.translate(_ONE_LINE) + "”"


__all__ = ["UNKNOWN", "APPROX", "approx", "duration", "seconds", "gigabytes", "gb_number", "count", "compact",
           "percent", "tflops", "loss", "rate", "clock", "bar", "one_line", "data_size"]


def data_size(n_bytes: int | float | None) -> str:
    """Bytes of a file or a download in decimal units, three figures: 812 B, 45.3 kB, 2.15 GB."""
    if _missing(n_bytes):
        return UNKNOWN
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n_bytes) >= scale:
            value = n_bytes / scale
            return f"{value:.{2 if value < 10 else 1 if value < 100 else 0}f} {unit}"
    return f"{int(n_bytes)} B"
