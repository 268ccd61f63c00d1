"""`fwtui compare RUN RUN...`: loss curves of several runs overlaid (fwtui.screens.compare).

RUN is a run directory, its events.jsonl, or a nanoGPT stdout log (as `fwtui view` reads them). A RUN that
is not there stops with one line naming it before the screen opens (a look at the path, no reading); the
logs themselves are read after the first frame, and a log that cannot be drawn says why on its legend line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.errors import FwtuiError


def path_problem(path: str) -> str | None:
    """One line when `path` cannot be a run to compare, from the file system alone; None when it may be."""
    from trainer.observe.runlog import EVENTS_FILE

    where = Path(path)
    if not where.exists():
        return f"{path}: no such run directory or log file (`fwtui runs` lists the runs)"
    if where.is_dir() and not (where / EVENTS_FILE).is_file():
        return (f"{path}: a directory with no {EVENTS_FILE}; name a run directory, its {EVENTS_FILE} or a "
                "nanoGPT stdout log")
    return None


def main(args: argparse.Namespace) -> int:
    if len(args.runs) < 1:
        raise FwtuiError("name at least one run to compare: `fwtui compare RUN RUN...` (`fwtui runs` lists them)")
    for path in args.runs:
        problem = path_problem(path)
        if problem is not None:
            raise FwtuiError(problem)
    from fwtui.screens.compare import CompareApp

    CompareApp(list(args.runs)).run()
    return 0
