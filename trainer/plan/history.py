"""What this machine's earlier runs of the same step measured: the planner's source for expected MFU.

A run counts when its RUN/events.jsonl starts with a RunStarted whose *step shape* is the planned one:
what decides the step time (the model's n_layer, n_head, n_embd, block_size, vocab_size and bias; the
batch_size and gradient_accumulation_steps; the precision and whether it was compiled; the device name).
The preset's name is not matched: `--set n_layer=24` on a 12-layer preset is another step, and a user
preset of the same shape under another name is the same one. Its first iterations are left out
(torch.compile, allocator warm-up), then each run gives the median of its logged MFU and achieved FLOP/s
(tokens/s × FLOPs per token); the planner takes the median over runs, so one long run does not outvote
the others.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from trainer.config import RunConfig
from trainer.observe.events import RunStarted, Step
from trainer.observe.runlog import EVENTS_FILE, parse_line, read_events

WARMUP_ITERS = 10
"""Iterations after a run's start iteration whose timings are skipped (compile and warm-up)."""

SHAPE_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "bias", "batch_size",
              "gradient_accumulation_steps")
"""The config fields that decide a step's time (with the precision, compile and the device)."""


def step_shape(config: dict, precision: str, compiled: bool, device_name: str) -> tuple:
    """What a run's step time depends on, as one comparable value (config as RunConfig.to_dict gives it)."""
    return (*(config.get(key) for key in SHAPE_KEYS), precision, bool(compiled), device_name)


def shape_of_run(started: RunStarted) -> tuple:
    """The step shape a logged run ran with."""
    return step_shape(started.config, started.precision, started.compiled, started.device_name)


@dataclass(frozen=True, slots=True)
class RunHistory:
    runs: int
    """Earlier runs that measured something after warm-up."""
    median_mfu: float | None
    """Median over runs of each run's median MFU; None when no run knew its peak."""
    median_flops_per_sec: float | None
    """Median over runs of each run's median achieved training FLOP/s."""

    @property
    def source(self) -> str:
        return (f"from {self.runs} earlier run{'s' if self.runs != 1 else ''} of this model and batch shape "
                "on this device")


def _run_medians(events: list) -> tuple[float | None, float | None] | None:
    started = next((e for e in events if isinstance(e, RunStarted)), None)
    if started is None:
        return None
    steps = [e for e in events if isinstance(e, Step) and e.iter >= started.start_iter + WARMUP_ITERS]
    if not steps:
        return None
    mfus = [e.mfu for e in steps if e.mfu is not None and e.mfu > 0]
    rates = [e.tokens_per_sec * started.flops_per_token for e in steps if e.tokens_per_sec > 0]
    mfu = statistics.median(mfus) if mfus else None
    rate = statistics.median(rates) if rates else None
    return None if mfu is None and rate is None else (mfu, rate)


def _first_run_started(log: Path) -> RunStarted | None:
    """The log's RunStarted, reading only up to it (prepare events may come first)."""
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            event = parse_line(line)
            if isinstance(event, RunStarted):
                return event
    return None


def earlier_runs(runs_dir: Path, config: RunConfig, device_name: str, precision: str,
                 compiled: bool) -> RunHistory | None:
    """The earlier runs under `runs_dir` with `config`'s step shape in `precision` on `device_name`, or
    None when there are none."""
    if not runs_dir.is_dir():
        return None
    wanted = step_shape(config.to_dict(), precision, compiled, device_name)
    mfus: list[float] = []
    rates: list[float] = []
    runs = 0
    for log in sorted(runs_dir.glob(f"*/{EVENTS_FILE}")):
        try:
            started = _first_run_started(log)
            if started is None or shape_of_run(started) != wanted:
                continue
            events = read_events(log)  # the whole log only for a matching run
        except OSError:
            continue  # a run directory being deleted or unreadable: not a measurement
        medians = _run_medians(events)
        if medians is None:
            continue
        runs += 1
        if medians[0] is not None:
            mfus.append(medians[0])
        if medians[1] is not None:
            rates.append(medians[1])
    if runs == 0:
        return None
    return RunHistory(runs=runs, median_mfu=statistics.median(mfus) if mfus else None,
                      median_flops_per_sec=statistics.median(rates) if rates else None)
