"""`fwtui compare RUN RUN... [--summary]`: loss curves of several runs overlaid (fwtui.screens.compare).

RUN is a run directory, its events.jsonl, or a nanoGPT stdout log (as `fwtui view` reads them), or a
directory of runs (each run in it: `fwtui compare runs/seeds`). A RUN that is not there stops with one line
naming it before the screen opens (a look at the path, no reading); the logs themselves are read after the
first frame, and a log that cannot be drawn says why on its legend line. Runs whose configs differ only by
seed are one group (a mean line and a min-max band, one colour). `--summary` prints the groups' table
(fwtui.seed_summary: mean ± sd, Welch's t-test between groups) instead of opening the screen.
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


def expand_runs(paths: list[str]) -> list[str]:
    """Each path as given, except a directory of runs (no events.jsonl of its own), which stands for its runs
    (trainer.runs.listing.is_run_dir), in name order; FwtuiError with one line for a path that is no run."""
    from trainer.observe.runlog import EVENTS_FILE
    from trainer.runs.listing import is_run_dir

    found = []
    for path in paths:
        where = Path(path)
        if where.is_dir() and not (where / EVENTS_FILE).is_file():
            inside = sorted(str(p) for p in where.iterdir() if p.is_dir() and (p / EVENTS_FILE).is_file()
                            and is_run_dir(p))
            if inside:
                found += inside
                continue
        problem = path_problem(path)
        if problem is not None:
            raise FwtuiError(problem)
        found.append(path)
    return found


def print_summary(paths: list[str]) -> None:
    """The seed groups' table of these runs (read now, in this process) on stdout."""
    from fwtui.compared_runs import assign_colours, load_compared, summary_groups
    from fwtui.seed_summary import summary_lines

    runs = [load_compared(p) for p in paths]  # a run that cannot be read: one line (FwtuiError)
    assign_colours(runs)  # names made unique, as the screen shows them
    print("\n".join(summary_lines(summary_groups(runs))))


def main(args: argparse.Namespace) -> int:
    if len(args.runs) < 1:
        raise FwtuiError("name at least one run to compare: `fwtui compare RUN RUN...` (`fwtui runs` lists them)")
    paths = expand_runs(list(args.runs))
    if getattr(args, "summary", False):
        print_summary(paths)
        return 0
    from fwtui.screens.compare import CompareApp

    CompareApp(paths).run()
    return 0
