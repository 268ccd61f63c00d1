"""`fwtui view LOG [--summary] [--gpu NAME]`: a nanoGPT stdout log or one of our events.jsonl, opened in the
dashboard read-only, or summarized: the figures our users worked out by hand from their logs, then the run's
health (trainer.observe.health: each finding with its evidence).
"""

from __future__ import annotations

import argparse

from fwtui import format as fmt
from fwtui.run_logs import load
from trainer.data.hellaswag import CHANCE, GPT2_124M_ACC_NORM
from trainer.observe.events import Event, HellaSwag
from trainer.observe.health import Finding, assess
from trainer.runs.summary import RunSummary, rescaled_mfu


def summary_lines(s: RunSummary, gpu: str | None) -> list[str]:
    def secs(value: float | None) -> str:
        return "unknown" if value is None else f"{value:.2f} s"

    def loss(value: float | None) -> str:
        return "unknown" if value is None else f"{value:.4f}"  # nanoGPT's own precision

    covered = f"{s.first_iter} to {s.last_iter}, " if s.first_iter is not None else ""
    every = "every iteration logged" if s.log_interval == 1 else f"one line every {s.log_interval} iterations"
    total = "unknown" if s.total_seconds is None else f"{s.total_seconds:.1f} s ({fmt.duration(s.total_seconds)})"
    if not s.total_exact:
        total = f"≈ {total} (estimate: unlogged iterations counted at the logged times)"
    lines = [
        f"iterations          {s.iterations:,} ({covered}{every})",
        f"total time          {total}",
        f"average iteration   {secs(s.avg_iter_seconds)} (total / iterations, evaluations included)",
        f"plain iteration     {secs(s.plain_iter_seconds)} (mean without an eval or checkpoint; first excluded)",
        f"first iteration     {secs(s.first_iter_seconds)} (compile and warm-up"
        + (", and a step-0 evaluation if one ran)" if s.source == "nanoGPT log" else ")"),
        f"evaluations         {s.evals} ({s.checkpoints} checkpoints): {s.eval_lost_seconds:.1f} s lost"
        + (" (their iterations' time above the plain one)" if s.source == "nanoGPT log" else " (measured)"),
        f"final train loss    {loss(s.final_train_loss)}",
        f"final val loss      {loss(s.final_val_loss)}",
        f"final bits per byte {bpb_text(s)}",
        f"last iteration loss {loss(s.last_loss)}",
    ]
    if s.mfu_avg is None:
        lines.append("average MFU         unknown (no measured MFU in the log)")
    else:
        lines.append(f"average MFU         {s.mfu_avg * 100:.2f}% of {s.mfu_peak_source} "
                     f"({s.mfu_samples} measured line{'s' if s.mfu_samples != 1 else ''})")
    if gpu:
        mfu, label, peak = rescaled_mfu(s, gpu)
        value = "unknown" if mfu is None else f"{mfu * 100:.2f}%"
        lines.append(f"MFU on {label:<12} {value} of {peak / 1e12:g} TFLOP/s "
                     "(the same FLOP/s against the card's own peak)")
    if s.malformed_lines:
        what = "line that looked like a log line but did" if s.malformed_lines == 1 else \
            "lines that looked like log lines but did"
        lines.append(f"skipped             {s.malformed_lines} {what} not parse (a truncated last line?)")
    return lines


def bpb_text(s: RunSummary) -> str:
    """The last evaluation's train and val loss in bits per UTF-8 byte (trainer.data.bpb), or why unknown."""
    if s.final_val_bpb is None:
        return "unknown (" + ("a nanoGPT log has no byte counts)" if s.source == "nanoGPT log" else
                              "no evaluation with bits per byte in the log)")
    train = "unknown" if s.final_train_bpb is None else f"{s.final_train_bpb:.4f}"
    return f"train {train} · val {s.final_val_bpb:.4f} (summed loss / ln 2 / UTF-8 bytes of the evaluated text)"


def hellaswag_line(events: list[Event]) -> str:
    """The last HellaSwag scoring in the log (trainer.train.hellaswag), beside GPT-2 124M's and chance."""
    scored = [e for e in events if isinstance(e, HellaSwag)]
    if not scored:
        return "hellaswag           not scored in this log (hellaswag_interval, the h key, or `fwtui eval RUN`)"
    last = scored[-1]
    return (f"hellaswag           acc_norm {last.acc_norm:.4f} at iter {last.iter:,} ({last.count:,} examples, "
            f"acc {last.acc:.4f}); GPT-2 124M {GPT2_124M_ACC_NORM}, chance {CHANCE}")


def health_lines(findings: list[Finding], judged: bool = True) -> list[str]:
    """The summary's health section: "ok", or one line per finding (most serious first) with its evidence."""
    if not judged:
        return ["health              unknown (no logged iteration or evaluation to judge)"]
    if not findings:
        return ["health              ok (no NaN, loss spike, val plateau, train/val gap, MFU drop, memory or "
                "epoch problem)"]
    count = f"{len(findings)} finding{'s' if len(findings) != 1 else ''}"
    return [f"health              {count}:"] + [f"  - {f.message}" for f in findings]


def main(args: argparse.Namespace) -> int:
    events, summary, title = load(args.log, args.gpu)
    if args.summary:
        print(f"{summary.source}: {args.log}")
        for line in summary_lines(summary, args.gpu):
            print(line)
        print(hellaswag_line(events))
        for line in health_lines(assess(events), judged=bool(summary.logged_iterations or summary.evals)):
            print(line)
        return 0
    from fwtui.viewer import ViewerApp

    remaining = [events]

    def once() -> list[Event]:
        return remaining.pop() if remaining else []

    ViewerApp(once, controls=None, title=title).run()
    return 0
