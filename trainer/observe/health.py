"""Run health from the event stream: one line per problem, each with the figures that show it.

`assess(events)` reads a run's events (live or from RUN/events.jsonl) and reports:
- "nan": a non-finite loss (the run diverged);
- "gap": val loss above train loss by more than GAP_NATS at the latest evaluation (overfitting once an
  epoch is done; before that, a difference between the splits' text, said so);
- "plateau": val loss improved by less than PLATEAU_NATS over the last PLATEAU_EVALS evaluations;
- "spike": a logged loss more than SPIKE_RATIO × the median of the SPIKE_WINDOW logs before it;
- "mfu_drop": the median MFU of the last MFU_WINDOW logs below MFU_DROP × the run's median after warm-up;
- "memory": reserved (or peak) memory above MEMORY_NEAR of the device's;
- "epochs": more epochs seen than the run planned (max_iters × tokens/iter ÷ dataset tokens at start).
The thresholds are stated here so every message can say what it was measured against.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from trainer.observe.events import Eval, Event, RunStarted, Step

GAP_NATS = 0.10
PLATEAU_EVALS = 3
PLATEAU_NATS = 0.02
SPIKE_WINDOW = 20
SPIKE_MIN_HISTORY = 10
SPIKE_RATIO = 1.25
WARMUP_ITERS = 10
MFU_WINDOW = 10
MFU_DROP = 0.80
MEMORY_NEAR = 0.95
EPOCH_TOLERANCE = 0.01


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    """"nan", "gap", "plateau", "spike", "mfu_drop", "memory" or "epochs"."""
    message: str
    """One line: what is wrong and the evidence."""


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _nan(steps: list[Step], evals: list[Eval]) -> list[Finding]:
    bad = [(e.iter, "training loss", e.loss) for e in steps if not _finite(e.loss)]
    bad += [(e.iter, "val loss", e.val_loss) for e in evals if not _finite(e.val_loss)]
    if not bad:
        return []
    it, what, value = min(bad)
    last_good = max((e.iter for e in steps if _finite(e.loss) and e.iter < it), default=None)
    since = f"; last finite at iter {last_good:,}" if last_good is not None else ""
    return [Finding("nan", f"{what} is {value} at iter {it:,}{since}: the run diverged; resume from an earlier "
                           "checkpoint with a lower learning_rate or grad_clip")]


def _epochs_at(it: int, started: RunStarted | None, steps: list[Step]) -> float | None:
    """Epochs done at boundary `it`: it × tokens/iter ÷ the training split's tokens (RunStarted), the figure the
    Step of iteration it - 1 carries, so a finding reads the same whichever Steps had arrived when it was
    made; without a RunStarted (a nanoGPT log), the latest Step up to `it`."""
    if started is not None and started.dataset_tokens > 0:
        return it * started.tokens_per_iter / started.dataset_tokens
    seen = [s.epoch for s in steps if s.iter <= it]
    return max(seen) if seen else None


def _gap(evals: list[Eval], steps: list[Step], started: RunStarted | None = None) -> list[Finding]:
    finite = [e for e in evals if _finite(e.val_loss) and _finite(e.train_loss)]
    if not finite:
        return []
    last = finite[-1]
    gap = last.val_loss - last.train_loss
    if gap <= GAP_NATS:
        return []
    head = (f"train/val gap: val {last.val_loss:.2f} vs train {last.train_loss:.2f} at iter {last.iter:,} "
            f"(+{gap:.2f} nats, above {GAP_NATS:g})")
    epoch = _epochs_at(last.iter, started, steps)
    if epoch is not None and epoch < 1.0:
        # Under one epoch no training token has been seen twice, so the model cannot have memorised train:
        # the splits differ in kind (a small corpus's validation is its last documents, see data/ingest.py).
        return [Finding("gap", f"{head} after {epoch:.2f} epochs: not overfitting (no text seen twice yet); "
                               "the validation text differs from the training text")]
    after = f" after {epoch:.2f} epochs" if epoch is not None else ""
    return [Finding("gap", f"{head}{after}: overfitting; more data or fewer iterations")]


def _plateau(evals: list[Eval]) -> list[Finding]:
    finite = [e for e in evals if _finite(e.val_loss)]
    if len(finite) < PLATEAU_EVALS:
        return []
    window = finite[-PLATEAU_EVALS:]
    gain = window[0].val_loss - min(e.val_loss for e in window[1:])
    if gain >= PLATEAU_NATS:
        return []
    losses = ", ".join(f"{e.val_loss:.2f}" for e in window)
    return [Finding("plateau", f"val loss plateau: {losses} over the last {PLATEAU_EVALS} evals (iters "
                               f"{window[0].iter:,}-{window[-1].iter:,}; best gain {max(gain, 0):.2f} < "
                               f"{PLATEAU_NATS:g} nats)")]


def _spikes(steps: list[Step]) -> list[Finding]:
    losses = [(e.iter, e.loss) for e in steps if _finite(e.loss)]
    spikes = []
    for i in range(SPIKE_MIN_HISTORY, len(losses)):
        before = [loss for _, loss in losses[max(0, i - SPIKE_WINDOW):i]]
        median = statistics.median(before)
        if losses[i][1] > SPIKE_RATIO * median:
            spikes.append((losses[i][1] / median, losses[i][0], losses[i][1], median))
    if not spikes:
        return []
    ratio, it, loss, median = max(spikes)
    count = f"{len(spikes)} loss spike{'s' if len(spikes) > 1 else ''}"
    return [Finding("spike", f"{count}: largest {loss:.2f} at iter {it:,} against a median of {median:.2f} "
                             f"over the previous {SPIKE_WINDOW} logs (×{ratio:.2f}, flagged above "
                             f"×{SPIKE_RATIO:g})")]


def _mfu_drop(steps: list[Step], start_iter: int) -> list[Finding]:
    mfus = [(e.iter, e.mfu) for e in steps if e.mfu is not None and e.iter >= start_iter + WARMUP_ITERS]
    if len(mfus) < 2 * MFU_WINDOW:
        return []
    earlier = statistics.median(m for _, m in mfus[:-MFU_WINDOW])
    recent = statistics.median(m for _, m in mfus[-MFU_WINDOW:])
    if earlier <= 0 or recent >= MFU_DROP * earlier:
        return []
    return [Finding("mfu_drop", f"MFU dropped to {recent:.1%} over the last {MFU_WINDOW} logs (iters "
                                f"{mfus[-MFU_WINDOW][0]:,}-{mfus[-1][0]:,}) from {earlier:.1%} earlier: another "
                                "process on the GPU, thermal throttling, or a slow disk")]


def _memory(steps: list[Step]) -> list[Finding]:
    worst = None
    for e in steps:
        used = e.mem_peak_bytes if e.mem_peak_bytes is not None else e.mem_reserved_bytes
        if used is None or not e.mem_total_bytes:
            continue
        share = used / e.mem_total_bytes
        if worst is None or share > worst[0]:
            worst = (share, used, e.mem_total_bytes, e.iter)
    if worst is None or worst[0] <= MEMORY_NEAR:
        return []
    share, used, total, it = worst
    return [Finding("memory", f"memory near the limit: {used / 1e9:.1f} GB of {total / 1e9:.1f} GB ({share:.0%}) "
                              f"at iter {it:,}: an evaluation or sample may run out; lower batch_size")]


def _epochs(started: RunStarted | None, steps: list[Step]) -> list[Finding]:
    if started is None or not started.dataset_tokens or not steps:
        return []
    planned = started.max_iters * started.tokens_per_iter / started.dataset_tokens
    seen = max(e.epoch for e in steps)
    if seen <= planned * (1 + EPOCH_TOLERANCE):
        return []
    return [Finding("epochs", f"more epochs than planned: {seen:.2f} seen, {planned:.2f} planned "
                              f"({started.max_iters:,} iters × {started.tokens_per_iter:,} tokens of "
                              f"{started.dataset_tokens:,})")]


def assess(events: list[Event]) -> list[Finding]:
    """Every health finding for a run's events, most serious first (NaN, then the rest in a fixed order)."""
    started = next((e for e in events if isinstance(e, RunStarted)), None)
    steps = [e for e in events if isinstance(e, Step)]
    evals = [e for e in events if isinstance(e, Eval)]
    start_iter = started.start_iter if started is not None else (steps[0].iter if steps else 0)
    return (_nan(steps, evals) + _gap(evals, steps, started) + _plateau(evals) + _spikes(steps)
            + _mfu_drop(steps, start_iter) + _memory(steps) + _epochs(started, steps))
