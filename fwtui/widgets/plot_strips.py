"""A plotext line of ANSI text straight to the Strip Textual would make of it, about 7x faster.

plotext writes every run of cells as `ESC[48;2;R;G;Bm` (background), an optional `ESC[38;2;R;G;Bm` or
`ESC[38;5;Nm` (foreground), the text, `ESC[0m`. Textual's general path (rich's AnsiDecoder, then a Content, then
Visual.to_strips) takes about 1.5 ms a line on this project's 2-core machine, the larger half of answering a
chart key in `fwtui compare`. This reads only that grammar and builds the same segments: the widget's base style
under the run's colours, with the cell offset Textual's selection reads in each segment's meta. Any other line
(empty, bold, a code plotext does not write) returns None and takes the general path; tests/test_compare.py
checks the two agree segment for segment.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rich.cells import cell_len
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

RUN = re.compile(r"\x1b\[48;2;(\d+);(\d+);(\d+)m(?:\x1b\[38;(?:2;(\d+);(\d+);(\d+)|5;(\d+))m)?([^\x1b]*)\x1b\[0m")
"""One run of cells as plotext writes it: background RGB, then foreground RGB or 256-colour number, then text."""


@lru_cache(maxsize=1024)
def _run_style(base: Style, background: tuple[int, int, int], foreground: tuple[int, int, int] | None,
               colour_number: int | None) -> Style:
    """The base style with a run's colours on top (a chart uses a handful: kept)."""
    if foreground is not None:
        colour = Color.from_rgb(*foreground)
    elif colour_number is not None:
        colour = Color.from_ansi(colour_number)
    else:
        colour = None  # the widget's own text colour
    return base + Style(color=colour, bgcolor=Color.from_rgb(*background))


def plot_line_strip(line: str, base: Style, width: int) -> Strip | None:
    """`line` (one line of plotext's output) as a Strip `width` cells wide; None when it is not in plotext's
    usual form or not exactly `width` cells (the caller converts it the general way)."""
    segments, x, position = [], 0, 0
    for run in RUN.finditer(line):
        if run.start() != position:  # something between runs: not the grammar
            return None
        position = run.end()
        bg_r, bg_g, bg_b, fg_r, fg_g, fg_b, number, text = run.groups()
        if not text:
            continue
        style = _run_style(base, (int(bg_r), int(bg_g), int(bg_b)),
                           (int(fg_r), int(fg_g), int(fg_b)) if fg_r is not None else None,
                           int(number) if number is not None else None)
        segments.append(Segment(text, style + Style.from_meta({"offset": (x, 0)})))
        x += cell_len(text)
    if position != len(line) or not segments or x != width:
        return None
    return Strip(segments, x)
