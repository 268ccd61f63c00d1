"""A run's log, whichever kind it is, read as events: our events.jsonl, or a nanoGPT stdout log.

`fwtui view`, `fwtui report` and the compare screen read logs through `load`; it sits below all of them (it
imports no screen), so the faces import downward only.
"""

from __future__ import annotations

from pathlib import Path

from trainer.errors import DataError
from trainer.observe.events import Event
from trainer.observe.runlog import EVENTS_FILE, header_problem, is_run_log, parse_line
from trainer.runs.nanogpt_log import log_to_events, parse_nanogpt_log, read_log_text
from trainer.runs.summary import RunSummary, rescaled_mfu, summarize_events, summarize_nanogpt


def load(path_arg: str, gpu: str | None) -> tuple[list[Event], RunSummary, str]:
    """(events for the dashboard, the summary, a title) for a log path or a run directory."""
    path = Path(path_arg)
    if path.is_dir() and (path / EVENTS_FILE).is_file():
        path = path / EVENTS_FILE
    text = read_log_text(path)
    problem = header_problem(text.lstrip().split("\n", 1)[0])
    if problem and (path.name == EVENTS_FILE or is_run_log(text)):
        # Empty, not ours, or a newer schema: said as `fwtui runs` says it, never a report of "unknown"s.
        raise DataError(f"{path} {problem}")
    if not problem:
        events = [e for e in map(parse_line, text.split("\n")) if e is not None]
        title = path.parent.name if path.name == EVENTS_FILE else path.name
        return events, summarize_events(events), title
    log = parse_nanogpt_log(text)
    if not log.iters:
        raise DataError(f"{path}: no nanoGPT `iter` lines and no fwtui header; pass a nanoGPT stdout log "
                        "(`iter N: loss ..., time ...ms, mfu ...%` lines) or a run's events.jsonl")
    peak, source = None, ""
    if gpu:
        _, label, peak = rescaled_mfu(summarize_nanogpt(log), gpu)  # checks the name first
        source = f"table: {label} bf16 dense {peak / 1e12:g} TFLOP/s (--gpu)"
    start = path.stat().st_mtime - sum(it.seconds for it in log.iters)  # so the last line is the file's time
    events = log_to_events(log, start_time=start, peak_flops=peak, peak_source=source, name=path.stem,
                           source=str(path))
    return events, summarize_nanogpt(log), path.name
