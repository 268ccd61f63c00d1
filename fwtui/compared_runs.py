"""The runs a compare draws, read from their logs: no widget here, so the compare screen's thread reads them.

A run is a run directory, its events.jsonl, or a nanoGPT stdout log (read as `fwtui view` reads it) and becomes a
ComparedRun: its LossCurves (fwtui.widgets.charts) and final figures, a snapshot of the log when it was read.
Its name comes from its path alone (`run_name`), so the screen can show it, in its colour, before it is read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fwtui.chart_math import run_colours
from fwtui.widgets.charts import LossCurves
from trainer.errors import FwtuiError
from trainer.observe.events import Eval, HellaSwag, RunStarted, Step
from trainer.runs.significance import RunFigures, SeedGroup, group_by_seed


@dataclass
class ComparedRun:
    """One run as the compare shows it: its name (and so its colour), curves and final figures."""

    name: str
    path: str
    curves: LossCurves
    preset: str = ""
    last_iter: int | None = None
    tokens_seen: int | None = None
    final_train: float | None = None  # the last logged train loss, nats/token
    final_val: float | None = None  # the last eval's val loss
    best_val: float | None = None
    final_val_bpb: float | None = None  # the last eval's val loss in bits per UTF-8 byte (trainer.data.bpb)
    hellaswag: float | None = None  # the last HellaSwag acc_norm, when scored
    config: dict = field(default_factory=dict)  # the run's config (its last RunStarted): seed groups compare it
    slot: int = field(default=0)  # its PALETTE entry in this compare
    reading: bool = False  # True until the worker has read its log (the legend says "reading...")
    problem: str | None = None  # one line when its log could not be read (shown in its legend line)


def run_name(path: str) -> str:
    """How the compare names a run, from its path alone (so its colour is known before it is read): a run
    directory's name (or its events.jsonl's directory), else the log file's name."""
    from trainer.observe.runlog import EVENTS_FILE

    where = Path(path)
    if where.is_dir() or where.name == EVENTS_FILE:
        where = where.parent if where.name == EVENTS_FILE else where
        return Path(os.path.abspath(where)).name or str(where)  # "." is the directory's own name
    return where.name or path


def waiting_run(path: str) -> ComparedRun:
    """A run the worker has yet to read: its name and path, no curve."""
    return ComparedRun(name=run_name(path), path=path, curves=LossCurves(), reading=True)


PACE_LINES = 200
"""An events.jsonl is read this many lines (about 4 ms of work) at a time between calls of `pace`."""

Reader = Callable[[str, Callable[[], None]], "ComparedRun"]
"""What reads a run for the compare screen: (path, pace) -> ComparedRun; load_compared, or a test's."""


def load_compared(path: str, pace: Callable[[], None] = lambda: None) -> ComparedRun:
    """Read one run (a run directory, its events.jsonl, or a nanoGPT log); FwtuiError with one line if not.

    An events.jsonl is read as plain JSON dicts, not rebuilt into events (fwtui.run_logs.load does
    that, 3x slower: 50,000 steps would take 1.3 s instead of 0.4); a nanoGPT log goes through run_logs.load.
    Touches no widget: the compare screen calls it on its reading thread, with a `pace` that waits while the
    UI thread answers a key (threads of one process share the GIL: without it a key took twice as long)."""
    from trainer.observe.runlog import EVENTS_FILE, is_run_log

    file = Path(path) / EVENTS_FILE if Path(path).is_dir() else Path(path)
    try:
        text = file.read_bytes().decode("utf-8", errors="replace") if file.is_file() else ""
    except OSError:
        text = ""  # run_logs.load below says why in one line
    if is_run_log(text):  # our header: the one rule runs, attach, view and report use
        run = ComparedRun(name=run_name(path), path=path, curves=LossCurves())
        for count, line in enumerate(text.split("\n")):
            if count % PACE_LINES == 0:
                pace()
            try:
                _take(run, json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line, the header, or a kind this reader does not draw
    else:
        from fwtui.run_logs import load  # nanoGPT logs (imports the parser and the summary)

        events, _, _ = load(path, None)
        run = ComparedRun(name=run_name(path), path=path, curves=LossCurves())
        for event in events:
            if isinstance(event, (Step, Eval, RunStarted, HellaSwag)):
                _take(run, event.to_dict())
    if run.last_iter is None and run.final_val is None:
        raise FwtuiError(f"{path}: no logged step or eval to draw yet; wait for the run's first log line")
    return run


def _take(run: ComparedRun, event: dict) -> None:
    """One event's dict (trainer.observe.events field names) into the run's curves and figures."""
    kind = event["kind"]
    if kind == Step.kind:
        run.curves.add_step(event["iter"], event["loss"], event["tokens_seen"], event["elapsed_seconds"])
        run.last_iter, run.tokens_seen, run.final_train = event["iter"], event["tokens_seen"], event["loss"]
    elif kind == Eval.kind:
        run.curves.add_eval(event["iter"], event["val_loss"])
        run.final_val, run.final_val_bpb = event["val_loss"], event.get("val_bpb")
        run.best_val = event["val_loss"] if run.best_val is None else min(run.best_val, event["val_loss"])
    elif kind == RunStarted.kind:
        run.config = dict(event["config"])
        run.preset = run.curves.preset = str(run.config.get("name", ""))
        run.curves.axis.flops_per_token = event.get("flops_per_token")  # the FLOPs x axis (training FLOPs)
    elif kind == HellaSwag.kind:
        run.hellaswag = event["acc_norm"]


def assign_colours(runs: list[ComparedRun]) -> None:
    """Each run's colour from its name (fwtui.chart_math.run_colours); a repeated name keeps the path apart.
    The runs of a seed group (two or more read runs of one config less the seed) all take its first run's."""
    seen: set[str] = set()
    for run in runs:
        if run.name in seen:
            run.name = run.path
        seen.add(run.name)
    for run, slot in zip(runs, run_colours([r.name for r in runs])):
        run.slot = slot
    for members in seed_groups(runs):
        for run in members[1:]:
            run.slot = members[0].slot


def figures(run: ComparedRun) -> RunFigures:
    """What the seed comparison (trainer.runs.significance) takes of a run."""
    return RunFigures(run.name, run.config, run.final_val, run.final_val_bpb, run.hellaswag)


def seed_groups(runs: list[ComparedRun]) -> list[list[ComparedRun]]:
    """The read runs grouped by config less the seed (trainer.runs.significance.group_by_seed), in order."""
    read = [r for r in runs if not r.reading and not r.problem]
    by_name = {r.name: r for r in read}
    return [[by_name[f.name] for f in group.runs] for group in group_by_seed([figures(r) for r in read])]


def summary_groups(runs: list[ComparedRun]) -> list[SeedGroup]:
    """The seed groups of the read runs, for the summary table (fwtui.seed_summary)."""
    return group_by_seed([figures(r) for r in runs if not r.reading and not r.problem])
