"""`fwtui fetch DATASET [--subset S] [--shards N] [--files GLOB] [--list] [--dir DIR]`: shards from the hub.

The engine (trainer.data.hub_files / hub_fetch) lists, downloads, resumes and checks; this face draws a bar
for the file and one for the whole (bytes, rate, time left) and prints, last, the local folder or file of
the shards, ready for `--data`.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from fwtui.format import approx, data_size, duration


def main(args: argparse.Namespace) -> int:
    from trainer.data.hub_files import DATASETS, list_subsets, pin_revision, plan_fetch, repo_of

    console = Console(highlight=False, soft_wrap=True)
    if args.list and args.subset is None and args.files is None and args.dataset in DATASETS:
        repo = repo_of(args.dataset)
        subsets = list_subsets(repo, pin_revision(repo, args.revision))
        console.print(f"{repo}: {len(subsets)} subsets (fetch one with --subset NAME --shards N)")
        for name, files, size in subsets:
            console.print(f"  {name:24} {files:5,} files  {data_size(size):>10}")
        return 0
    plan = plan_fetch(args.dataset, subset=args.subset, shards=args.shards, files=args.files,
                      revision=args.revision)
    if args.list:
        _print_listing(console, plan)
        return 0
    from trainer.data.hub_fetch import fetch

    console.print(f"{plan.repo} @ {plan.revision[:10]} · {len(plan.files)} file(s), {data_size(plan.total_bytes)}"
                  f" → {args.dir or 'the hub cache'}")
    result = _fetch_with_bars(console, plan, args.dir, fetch)
    reused = f", {result.reused} already on disk" if result.reused else ""
    console.print(f"fetched {len(result.paths)} file(s), each checked against the hub's sha256{reused}")
    print(result.spec)  # the last line: what to pass to --data (plain print: never wrapped or styled)
    return 0


def _print_listing(console: Console, plan) -> None:
    from trainer.data.hub_files import TOKENS_PER_PARQUET_BYTE

    where = plan.folder or "/"
    shown = f"first {len(plan.files)} of {plan.available}" if len(plan.files) < plan.available else \
        f"{len(plan.files)}"
    console.print(f"{plan.repo} · {where} @ {plan.revision[:10]} · {shown} file(s), {data_size(plan.total_bytes)}")
    for f in plan.files:
        sha = f"sha256 {f.sha256[:12]}…" if f.sha256 else "no sha256 (a small git file: size checked)"
        console.print(f"  {f.path:48} {data_size(f.size):>10}  {sha}")
    if plan.named_tokens is not None and len(plan.files) == plan.available:
        console.print(f"  tokens: {plan.named_tokens:,} (the repository's token_count sum for {where})")
    else:
        console.print(f"  tokens: ≈ {plan.estimated_tokens:,} (estimate: bytes × {TOKENS_PER_PARQUET_BYTE:.3f} "
                      "tokens per parquet byte, FineWeb sample/10BT's; exact after fetch: fwtui prepare --count)")


def _fetch_with_bars(console: Console, plan, directory, fetch):
    from trainer.data.hub_fetch import FetchProgress

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[detail]}"))
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bars:
        file_bar = bars.add_task("file", total=None, detail="asking the hub")
        all_bar = bars.add_task("all ", total=plan.total_bytes, detail="")

        def show(p: FetchProgress) -> None:
            bars.update(file_bar, description=f"{p.index}/{p.count}", total=p.file_total, completed=p.file_done,
                        detail=f"{data_size(p.file_done)} of {data_size(p.file_total)} · {p.file}")
            eta = approx(duration(p.eta_seconds))
            bars.update(all_bar, completed=p.done, detail=f"{data_size(p.done)} of {data_size(p.total)} · "
                        f"{data_size(p.rate)}/s · {eta} left")
            if p.finished:
                console.print(f"  {p.index}/{p.count} {p.file} · {data_size(p.file_total)} · checked, in place")

        return fetch(plan, directory, progress=show)

