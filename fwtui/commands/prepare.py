"""`fwtui prepare PATH... [--demo] [--out DIR] [--count]`: tokenize parquet into train.bin/val.bin, or count
tokens (`--demo`: the demo corpus, built once, and where it is)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from trainer.observe.events import PrepareProgress


def main(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    if getattr(args, "demo", False):
        from trainer.data.demo import build_demo_corpus

        args.paths = [*args.paths, str(build_demo_corpus())]
        console.print(f"demo corpus: {args.paths[-1]}")
    if not args.paths:
        from trainer.errors import ConfigError

        raise ConfigError("prepare needs PATH (parquet files, a directory or a glob) or --demo")
    if args.count:
        from trainer.data.token_count import count_tokens

        count = count_tokens(args.paths, text_column=args.text_column)
        label = "exact" if count.exact else "≈ estimate"
        console.print(f"{count.tokens:,} tokens ({label}) in {count.documents:,} documents")
        console.print(f"  {count.how}")
        console.print(f"  prepare writes one <|endoftext|> after each document: about "
                      f"{count.prepared_tokens:,} tokens in train.bin + val.bin")
        return 0

    from trainer.data.ingest import prepare

    with Progress(TextColumn("tokenizing"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[detail]}"), console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task("prepare", total=None, detail="reading the inputs")

        def show(event: PrepareProgress) -> None:
            eta = "unknown" if event.eta_seconds is None else f"{event.eta_seconds:,.0f} s"
            which = f"file {event.file_index}/{event.file_count} " if event.file_count > 1 else ""
            detail = (f"{event.documents:,} docs · {event.tokens:,} tokens · "
                      f"{event.tokens_per_sec / 1e6:.2f} M tok/s · ETA {eta} · {which}{Path(event.source).name}")
            bar.update(task, total=event.bytes_total, completed=event.bytes_done, detail=detail)
            if event.finished_file:
                console.print(file_line(event))

        data = prepare(args.paths, Path(args.out) if args.out else None, text_column=args.text_column,
                       val_fraction=args.val_fraction, workers=args.workers, progress=show)

    meta = data.meta
    how = "already prepared from the same inputs and settings: reused, nothing tokenized" if data.cached else \
        f"tokenized in {meta.get('elapsed_seconds', 0):.1f} s"
    console.print(f"prepared {data.dir}")
    console.print(f"  {how}")
    for name, tokens in (("train", data.train_tokens), ("val", data.val_tokens)):
        console.print(f"  {name + '.bin:':10} {tokens:,} tokens in {_documents(meta['splits'][name]['documents'])}")
    skipped = meta.get("skipped", {})
    if any(skipped.values()):
        console.print(f"  skipped: {skipped.get('null', 0):,} null, {skipped.get('empty', 0):,} empty or "
                      "whitespace-only documents")
    if meta.get("invalid_utf8_replaced"):
        console.print(f"  {_documents(meta['invalid_utf8_replaced'])} had invalid UTF-8, replaced by U+FFFD")
    return 0


def file_line(event: PrepareProgress) -> str:
    """The line printed as each input file is finished: which, its documents and tokens, where the whole is."""
    since = " (since the resume)" if event.file_resumed else ""
    return (f"  file {event.file_index}/{event.file_count} {Path(event.finished_file).name}: "
            f"{_documents(event.file_documents)}, {event.file_tokens:,} tokens{since} · "
            f"{event.tokens:,} tokens in all so far")


def _documents(n: int) -> str:
    return f"{n:,} document" if n == 1 else f"{n:,} documents"
