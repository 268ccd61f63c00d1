"""Argument types for the command line: a number argparse would take but the engine cannot use (`--workers -3`,
`--peak-tflops nan`, `--temperature inf`) is refused by argparse itself, as one usage line naming the flag,
before anything is started or written."""

from __future__ import annotations

import argparse
import math
from typing import Callable


def whole_number(minimum: int, maximum: int | None = None, hint: str = "") -> Callable[[str], int]:
    """An int in [minimum, maximum]; `hint` says what the edge values mean (e.g. "0: every core")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            span = f"from {minimum:,} to {maximum:,}" if maximum is not None else f"{minimum:,} or more"
            raise argparse.ArgumentTypeError(f"{value:,}: must be {span}{'; ' + hint if hint else ''}")
        return value

    return parse


def finite_number(minimum: float = 0.0, *, above: bool = False, hint: str = "") -> Callable[[str], float]:
    """A finite float at least `minimum` (strictly above it with `above`); nan and inf are refused."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < minimum or (above and value == minimum):
            edge = f"above {minimum:g}" if above else f"{minimum:g} or more"
            raise argparse.ArgumentTypeError(f"{text}: must be a finite number, {edge}{'; ' + hint if hint else ''}")
        return value

    return parse
