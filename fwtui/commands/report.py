"""`fwtui report RUN [--out DIR]`: a run to share, as report.md and loss.png. Several runs (or a directory of
runs): one report.md comparing them, seed groups and Welch's test included (fwtui.commands.report_runs).

RUN is a run directory (its events.jsonl), an events.jsonl, or a nanoGPT stdout log, read as `fwtui view`
reads them. report.md holds the config, the parameters, tokens, time, MFU, the final losses, HellaSwag when
scored, the health findings and the eval table (step, train, val, notes); loss.png the train and val
curves, drawn by matplotlib (the optional extra `fwtui[report]`; without it report.md is still written and
one line says why there is no picture). Every figure is the log's or the run summary's
(trainer.runs.summary); what the log does not hold says "unknown".
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from fwtui import format as fmt
from trainer.model.formulas import format_count
from trainer.observe.events import CheckpointSaved, Eval, Event, Finished, RunStarted, Step, Warning
from trainer.runs.summary import RunSummary

PNG_SIZE = (1000, 500)
"""loss.png in pixels (width, height): 10 × 5 inches at 100 dpi, readable pasted into an issue or a chat."""
PNG_DPI = 100
NO_MATPLOTLIB = "loss.png not written: matplotlib is not installed (pip install 'fwtui[report]')"


def _loss(value: float | None) -> str:
    return "unknown" if value is None or not math.isfinite(value) else f"{value:.4f}"


def eval_rows(events: list[Event]) -> list[tuple[int, str, str, str, str]]:
    """(step, train, val, val bits per byte, notes) per evaluation: best-so-far val, a checkpoint saved at that step (with its
    reason), HellaSwag scored there, a warning at that step."""
    notes: dict[int, list[str]] = {}
    for e in events:
        if isinstance(e, CheckpointSaved):
            notes.setdefault(e.iter, []).append(f"checkpoint ({e.reason})")
        elif e.kind == "hellaswag":
            notes.setdefault(e.iter, []).append(f"HellaSwag {e.acc_norm:.4f}")
    rows, best = [], math.inf
    for e in events:
        if not isinstance(e, Eval):
            continue
        here = []
        if e.val_loss < best:
            best = e.val_loss
            here.append("best val so far")
        here += notes.get(e.iter, [])
        rows.append((e.iter, _loss(e.train_loss), _loss(e.val_loss), _loss(e.val_bpb), "; ".join(here)))
    return rows


def iterations_line(summary: RunSummary, run: RunStarted | None, finished: Finished | None) -> str:
    """Which iterations ran, of how many, and how the run ended. The last one run may lie past the last one
    logged (log_interval > 1): the range runs to the end Finished gives, and the last logged is named."""
    if summary.first_iter is None or summary.last_iter is None:
        return "none logged"
    last = max(summary.last_iter, finished.iter - 1 if finished is not None else -1)
    text = f"{summary.first_iter:,} to {last:,} ({summary.iterations:,} iterations"
    if summary.last_iter != last:
        text += f"; logged every {summary.log_interval:,}, the last at {summary.last_iter:,}"
    text += ")" + (f" of max_iters {run.max_iters:,}" if run is not None else "")
    if finished is not None and finished.reason == "stopped":
        text += f", stopped there (it continues at iter {finished.iter:,})"
    elif finished is not None:
        text += f", {finished.reason}"
    return text


def report_markdown(events: list[Event], summary: RunSummary, title: str, *, png: str | None) -> str:
    """The whole report.md. `png`: the picture's file name to link, or why there is none."""
    runs = [e for e in events if isinstance(e, RunStarted)]
    run = runs[-1] if runs else None
    steps = [e for e in events if isinstance(e, Step)]
    finished = next((e for e in reversed(events) if isinstance(e, Finished)), None)
    hellaswag = [e for e in events if e.kind == "hellaswag"]
    cfg = run.config if run is not None else {}
    lines = [f"# fwtui run report: {title}", ""]
    rows = [("preset", str(cfg.get("name", "unknown"))), ("source", summary.source)]
    if run is not None:
        rows += [("device", f"{run.device_name} ({run.device}) · {run.precision} · "
                            f"{'compiled' if run.compiled else 'eager'}"),
                 ("parameters", f"{format_count(run.params)} (nanoGPT count) · "
                                f"{format_count(run.params_with_embeddings)} with position embeddings"),
                 ("tokens per iteration", f"{run.tokens_per_iter:,}")]
    last = steps[-1] if steps else None
    rows.append(("tokens seen", "unknown" if last is None else f"{last.tokens_seen:,}"
                 + (f" ({last.epoch:.2f} epochs)" if last.epoch else "")))
    rows.append(("iterations", iterations_line(summary, run, finished)))
    total = "unknown" if summary.total_seconds is None else fmt.duration(summary.total_seconds)
    rows.append(("time", total if summary.total_exact else f"≈ {total} (estimate: unlogged iterations counted "
                                                           "at the logged times)"))
    rows.append(("MFU", "unknown (no measured MFU in the log)" if summary.mfu_avg is None
                 else f"{summary.mfu_avg * 100:.2f}% average of {summary.mfu_peak_source}"))
    rows += [("final train loss", _loss(summary.final_train_loss)), ("final val loss", _loss(summary.final_val_loss)),
             ("final bits per byte", f"train {_loss(summary.final_train_bpb)} · val {_loss(summary.final_val_bpb)} "
                                     "(summed loss / ln 2 / UTF-8 bytes of the evaluated text)"),
             ("last iteration loss", _loss(summary.last_loss))]
    if hellaswag:
        h = hellaswag[-1]
        rows.append(("HellaSwag", f"acc_norm {h.acc_norm:.4f} · acc {h.acc:.4f} over {h.count:,} examples "
                                  f"at iter {h.iter:,} (GPT-2 124M: 0.2955)"))
    lines += ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
    lines += ["## Loss", "", f"![loss curves]({png})" if png and png.endswith(".png") else f"_{png}_", ""]
    table = eval_rows(events)
    lines += ["## Evaluations", ""]
    if table:
        lines += ["| step | train | val | val bpb | notes |", "|---:|---:|---:|---:|---|",
                  *(f"| {s:,} | {t} | {v} | {b} | {n} |" for s, t, v, b, n in table)]
    else:
        lines.append("no evaluation in the log")
    warnings = [e.message for e in events if isinstance(e, Warning)]
    from trainer.observe.health import assess

    findings = assess(events)
    lines += ["", "## Health", ""]
    lines += [f"- {f.message}" for f in findings] or ["ok: no NaN, loss spike, val plateau, train/val gap, MFU drop, "
                                                      "memory or epoch problem found"]
    if warnings:
        lines += ["", "## Warnings", "", *(f"- {w}" for w in warnings[-20:])]
    if cfg:
        lines += ["", "## Config", "", "```toml", *(f"{k} = {_toml(v)}" for k, v in cfg.items()), "```"]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value) if value is not None else '""'


def write_loss_png(events: list[Event], path: Path, title: str) -> str | None:
    """loss.png: train loss per logged step (line) and val loss per eval (points), nats/token by iteration,
    PNG_SIZE pixels. None when written; else the one line saying why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display, no GUI toolkit
        import matplotlib.pyplot as plt
    except ImportError:
        return NO_MATPLOTLIB
    steps = [(e.iter, e.loss) for e in events if isinstance(e, Step) and math.isfinite(e.loss)]
    evals = [(e.iter, e.val_loss) for e in events if isinstance(e, Eval) and math.isfinite(e.val_loss)]
    fig, ax = plt.subplots(figsize=(PNG_SIZE[0] / PNG_DPI, PNG_SIZE[1] / PNG_DPI), dpi=PNG_DPI)
    try:
        if steps:
            ax.plot(*zip(*steps), color="tab:blue", linewidth=1.0, label="train")
        if evals:
            ax.plot(*zip(*evals), "o", color="tab:orange", markersize=4, label="val")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss (nats/token)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if steps or evals:
            ax.legend()
        fig.savefig(path, dpi=PNG_DPI)  # no bbox_inches="tight": the size stays PNG_SIZE
    finally:
        plt.close(fig)
    return None


def out_dir_for(run: str, out: str | None) -> Path:
    """--out, else the run directory, else `<log name>-report/` beside a log file."""
    if out:
        return Path(out)
    path = Path(run)
    if path.is_dir():
        return path
    if path.name == "events.jsonl":
        return path.parent
    return path.parent / f"{path.stem}-report"


def holds_runs(path: Path) -> bool:
    """A directory of runs (no events.jsonl of its own, some in its subdirectories): reported together."""
    return (path.is_dir() and not (path / "events.jsonl").is_file()
            and any((child / "events.jsonl").is_file() for child in path.iterdir() if child.is_dir()))


def main(args: argparse.Namespace) -> int:
    from fwtui.run_logs import load
    from trainer.errors import FwtuiError

    runs = args.run if isinstance(args.run, list) else [args.run]
    if len(runs) > 1 or holds_runs(Path(runs[0])):
        from fwtui.commands import report_runs  # several runs (or a directory of them): the seed groups' table

        return report_runs.main(runs, args.out)
    events, summary, title = load(runs[0], None)
    out = out_dir_for(runs[0], args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FwtuiError(f"--out {out}: cannot create it ({err.strerror}); pass a directory you can write") from None
    why_not = write_loss_png(events, out / "loss.png", title)
    text = report_markdown(events, summary, title, png=why_not or "loss.png")
    (out / "report.md").write_text(text, encoding="utf-8")
    print(f"wrote {out / 'report.md'}")
    print(why_not or f"wrote {out / 'loss.png'} ({PNG_SIZE[0]}×{PNG_SIZE[1]} px)")
    return 0
