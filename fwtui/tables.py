"""Tables for the CLI (`fwtui runs`, `fwtui presets`) that fit the width they are printed at.

Rich shares a too-narrow width out among the columns and cuts every value to "…", headers included; here
no value is cut: the columns the caller ranked least useful are left out, whole, until the rest fit at
their natural width, and one line under the table names what was left out and the width that shows it.
Piped output (grep, a file) is printed at COLUMNS when set, else at PIPED_WIDTH.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table

PIPED_WIDTH = 120
"""Columns of piped output when COLUMNS is not set: a wide terminal's, not Rich's 80 (nor every column)."""


@dataclass(frozen=True)
class TableColumn:
    header: str
    justify: str = "left"
    max_width: int | None = None
    """Values longer than this end in "…" (a free-text column whose whole text is printed elsewhere)."""


def table_console() -> Console:
    """A console at the terminal's width, or for piped output at COLUMNS (when set) or PIPED_WIDTH."""
    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(width=PIPED_WIDTH)
    return console


def _table(title: str, columns: Sequence[TableColumn], rows: Sequence[Sequence[RenderableType]],
           keep: Sequence[int]) -> Table:
    table = Table(title=title, title_justify="left")
    for i in keep:
        column = columns[i]
        table.add_column(column.header, justify=column.justify, no_wrap=True, max_width=column.max_width,
                         overflow="ellipsis")
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


def _index(columns: Sequence[TableColumn], header: str) -> int:
    return next(i for i, column in enumerate(columns) if column.header == header)


def fitted_table(console: Console, title: str, columns: Sequence[TableColumn],
                 rows: Sequence[Sequence[RenderableType]], *, drop_order: Sequence[str]) -> tuple[Table, str]:
    """The table with as many columns as fit `console.width` uncut, and a note naming those left out ("" when
    none was). `drop_order`: headers, the first to leave first, after the columns of `drop_order` that hold
    nothing but "-"; a column not named there always stays."""
    keep = list(range(len(columns)))
    empty = [h for h in drop_order if all(str(row[_index(columns, h)]) == "-" for row in rows)]
    drop_order = empty + [h for h in drop_order if h not in empty]
    dropped: list[str] = []
    wide = console.options.update_width(10_000)
    natural = Measurement.get(console, wide, _table(title, columns, rows, keep)).maximum
    table = _table(title, columns, rows, keep)
    for header in drop_order:
        if Measurement.get(console, wide, table).maximum <= console.width:
            break
        keep = [i for i in keep if columns[i].header != header]
        dropped.append(header)
        table = _table(title, columns, rows, keep)
    if not dropped:
        return table, ""
    return table, (f"not shown at {console.width} columns: {', '.join(dropped)} (COLUMNS={natural} or wider "
                   "shows every column)")
