"""What our users computed by hand from a finished log: iterations, time per iteration, the time lost to
evaluation and checkpoint iterations, final losses and average MFU (`fwtui view LOG --summary`).

Two sources: a nanoGPT stdout log (trainer.runs.nanogpt_log) and one of our events.jsonl. The first logged
iteration is left out of the averages: it carries torch.compile and warm-up, not the steady rate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from trainer.errors import ConfigError
from trainer.observe.events import CheckpointSaved, Eval, Event, Finished, RunStarted, Step
from trainer.observe.hardware import PEAK_TABLE, card_spec
from trainer.runs.nanogpt_log import NANOGPT_PEAK_FLOPS, NanoGPTLog, covered_seconds, iteration_gaps, \
    typical_iter_seconds


@dataclass(frozen=True, slots=True)
class RunSummary:
    source: str
    """"nanoGPT log" or "fwtui events"."""
    iterations: int
    """Training iterations the log covers (logged lines times the log interval; our events: up to the end the
    Finished event gives, past the last logged iteration)."""
    logged_iterations: int
    log_interval: int
    first_iter: int | None
    last_iter: int | None
    total_seconds: float | None
    total_exact: bool
    """False when the log skips iterations (log_interval > 1) and the total is estimated from the logged ones."""
    first_iter_seconds: float | None
    """The first logged iteration: compile and warm-up (and, in nanoGPT, the step-0 evaluation)."""
    plain_iter_seconds: float | None
    """Mean time of an iteration that ran no evaluation or checkpoint (first one excluded)."""
    evals: int
    checkpoints: int
    eval_lost_seconds: float
    """Time evaluations and checkpoints added (nanoGPT: their iterations' time above the plain mean)."""
    final_train_loss: float | None
    final_val_loss: float | None
    last_loss: float | None
    """Training loss printed on the last iteration line."""
    mfu_avg: float | None
    """Mean of the measured MFU values (fraction of `mfu_peak_flops`); not-yet-measured ones excluded."""
    mfu_samples: int
    mfu_peak_flops: float | None
    mfu_peak_source: str
    malformed_lines: int = 0
    final_train_bpb: float | None = None
    """The last evaluation's losses in bits per UTF-8 byte (trainer.data.bpb); None when the log has none."""
    final_val_bpb: float | None = None

    @property
    def avg_iter_seconds(self) -> float | None:
        """Total time over iterations: what a whole run costs per iteration, evaluations included."""
        if self.total_seconds is None or not self.iterations:
            return None
        return self.total_seconds / self.iterations


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize_nanogpt(log: NanoGPTLog) -> RunSummary:
    gaps = iteration_gaps(log)
    typical = typical_iter_seconds(log)
    eval_iters = [it for it in log.iters[1:] if it.after_eval]
    lost = sum(max(0.0, it.seconds - typical) for it in eval_iters) if typical is not None else 0.0
    mfus = [it.mfu_percent / 100.0 for it in log.iters if it.mfu_percent is not None]
    last_eval = log.evals[-1] if log.evals else None
    interval = Counter(gaps[1:]).most_common(1)[0][0] if len(gaps) > 1 else 1
    return RunSummary(
        source="nanoGPT log", iterations=sum(gaps), logged_iterations=len(log.iters), log_interval=interval,
        first_iter=log.iters[0].iter if log.iters else None, last_iter=log.iters[-1].iter if log.iters else None,
        total_seconds=sum(covered_seconds(log)) if log.iters else None, total_exact=all(g == 1 for g in gaps),
        first_iter_seconds=log.iters[0].seconds if log.iters else None, plain_iter_seconds=typical,
        evals=len(log.evals), checkpoints=sum(1 for e in log.evals if e.checkpoint_to is not None),
        eval_lost_seconds=lost, final_train_loss=last_eval.train_loss if last_eval else None,
        final_val_loss=last_eval.val_loss if last_eval else None,
        last_loss=log.iters[-1].loss if log.iters else None, mfu_avg=_mean(mfus), mfu_samples=len(mfus),
        mfu_peak_flops=NANOGPT_PEAK_FLOPS, mfu_peak_source="nanoGPT's A100 constant, 312 TFLOP/s",
        malformed_lines=len(log.malformed_lines))


def summarize_events(events: list[Event]) -> RunSummary:
    """The same summary from our own events (resumed runs: each process's elapsed time is added up)."""
    steps = [e for e in events if isinstance(e, Step) and e.log_point]  # the logged lines; live points between
    evals = [e for e in events if isinstance(e, Eval)]
    checkpoints = [e for e in events if isinstance(e, CheckpointSaved)]
    starts = [e for e in events if isinstance(e, RunStarted)]
    # Total wall time: the last elapsed (or Finished.seconds) of each process, summed over resumes.
    total, segment_end = 0.0, None
    for e in events:
        if isinstance(e, RunStarted):
            total += segment_end or 0.0
            segment_end = None
        elif isinstance(e, Step):
            segment_end = e.elapsed_seconds
        elif isinstance(e, Finished):
            segment_end = max(segment_end or 0.0, e.seconds)
    total += segment_end or 0.0
    gaps, previous = [], None
    for s in steps:
        gaps.append(s.iter - previous if previous is not None and s.iter > previous else 1)
        previous = s.iter
    interval = Counter(gaps[1:]).most_common(1)[0][0] if len(gaps) > 1 else 1
    final = next((e for e in reversed(events) if isinstance(e, Finished)), None)
    # Iterations that ran: up to the last logged one, or to the end the Finished event gives (its iter is the
    # boundary it stopped at, iterations 0 .. iter - 1 done), past the last log point when log_interval > 1.
    last_ran = max(steps[-1].iter if steps else -1, final.iter - 1 if final else -1)
    first = starts[0].start_iter if starts else (steps[0].iter if steps else 0)
    iterations = last_ran - first + 1 if steps else 0
    last_eval = evals[-1] if evals else None
    mfus = [s.mfu for s in steps[1:] if s.mfu is not None]
    peak = starts[-1].peak_flops if starts else None
    return RunSummary(
        source="fwtui events", iterations=iterations, logged_iterations=len(steps), log_interval=interval,
        first_iter=steps[0].iter if steps else None, last_iter=steps[-1].iter if steps else None,
        total_seconds=total if steps or final else None, total_exact=True,
        first_iter_seconds=steps[0].step_seconds if steps else None,
        plain_iter_seconds=_mean([s.step_seconds for s in steps[1:]]) if len(steps) > 1 else (
            steps[0].step_seconds if steps else None),
        evals=len(evals), checkpoints=len(checkpoints),
        eval_lost_seconds=sum(e.seconds for e in evals) + sum(c.seconds for c in checkpoints),
        final_train_loss=(final.final_train_loss if final and final.final_train_loss is not None
                          else last_eval.train_loss if last_eval else None),
        final_val_loss=(final.final_val_loss if final and final.final_val_loss is not None
                        else last_eval.val_loss if last_eval else None),
        last_loss=steps[-1].loss if steps else None, mfu_avg=_mean(mfus), mfu_samples=len(mfus),
        mfu_peak_flops=peak, mfu_peak_source=starts[-1].peak_flops_source if starts else "unknown",
        final_train_bpb=last_eval.train_bpb if last_eval else None,
        final_val_bpb=last_eval.val_bpb if last_eval else None)


def rescaled_mfu(summary: RunSummary, gpu: str) -> tuple[float | None, str, float]:
    """(MFU against `gpu`'s real peak, the card's label, its peak FLOP/s): the same achieved FLOP/s over
    another denominator. ConfigError with one line for a card not in the table."""
    spec = card_spec(gpu)
    if spec is None:
        known = ", ".join(s.label for s in PEAK_TABLE)
        raise ConfigError(f"--gpu {gpu!r}: not in the peak table ({known}); name one of these cards")
    peak = spec.peak_tflops * 1e12
    if summary.mfu_avg is None or summary.mfu_peak_flops is None:
        return None, spec.label, peak
    return summary.mfu_avg * summary.mfu_peak_flops / peak, spec.label, peak
