"""`fwtui report RUN RUN... [--out DIR]`: several runs in one report.md: a row per run, then the runs grouped
by config less the seed with mean ± sd and Welch's t-test between the groups (fwtui.seed_summary), so a
claim that B beats A comes with its test. Written to --out, else compare-report/ beside the first run."""

from __future__ import annotations

import math
from pathlib import Path

from fwtui.compared_runs import ComparedRun, assign_colours, load_compared, summary_groups
from fwtui.seed_summary import summary_markdown


def _figure(value: float | None) -> str:
    return "unknown" if value is None or not math.isfinite(value) else f"{value:.4f}"


def runs_markdown(runs: list[ComparedRun]) -> str:
    lines = [f"# fwtui report: {len(runs)} runs", "",
             "| run | preset | seed | iteration | final val loss | val bpb | HellaSwag acc_norm | path |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        seed = run.config.get("seed", "unknown")
        it = "unknown" if run.last_iter is None else f"{run.last_iter:,}"
        hellaswag = "not scored" if run.hellaswag is None else f"{run.hellaswag:.4f}"
        lines.append(f"| {run.name} | {run.preset or 'unknown'} | {seed} | {it} | {_figure(run.final_val)} | "
                     f"{_figure(run.final_val_bpb)} | {hellaswag} | {run.path} |")
    lines += ["", "## Seed groups", "",
              "Runs whose configs differ only by `seed` form a group; figures are the final val loss (nats/token) "
              "and bits per byte as mean ± sample sd. Between groups: the difference of the val loss means (B - A), "
              "its 95% interval and Welch's t-test p (scipy.stats.ttest_ind, unequal variances).", ""]
    lines += summary_markdown(summary_groups(runs))
    return "\n".join(lines) + "\n"


def out_dir_for_runs(paths: list[str], out: str | None) -> Path:
    if out:
        return Path(out)
    first = Path(paths[0])
    return (first.parent if first.is_dir() or first.name == "events.jsonl" else first.parent) / "compare-report"


def main(paths: list[str], out: str | None) -> int:
    from fwtui.commands.compare import expand_runs
    from trainer.errors import FwtuiError

    paths = expand_runs(paths)
    runs = [load_compared(p) for p in paths]
    assign_colours(runs)  # names made unique
    where = out_dir_for_runs(paths, out)
    try:
        where.mkdir(parents=True, exist_ok=True)
        (where / "report.md").write_text(runs_markdown(runs), encoding="utf-8")
    except OSError as err:
        raise FwtuiError(f"--out {where}: cannot write there ({err.strerror}); pass a directory you can write") from None
    print(f"wrote {where / 'report.md'} ({len(runs)} runs, {len(summary_groups(runs))} seed groups)")
    return 0
