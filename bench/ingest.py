"""Benchmark `prepare` against the limit of the tokenizer itself, and its memory and cache reuse.

Builds >= 200 MB of text from ../shared/data/shakespeare-fineweb.parquet (each repetition shuffles the
lines of every document and prefixes its index, so no two documents are equal) in FineWeb's schema with
row groups of 1000 documents, then prints:
  - prepare tokens/s (a fresh process: tokenizer load, parquet reading, encoding, writing, all included);
  - tiktoken's encode_ordinary_batch tokens/s over the same texts on every core (texts already in memory);
  - their ratio (goal >= 0.85), prepare's peak RSS (goal < 1 GB), a second (cached) prepare's time (< 1 s).
With --repeat N, each is measured N times, interleaved, and the best time kept (the highest RSS).
Each measurement runs in its own subprocess so that the RSS figure is prepare's own.

    python bench/ingest.py [--mb 200] [--workers 0] [--repeat 1] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import child_process  # noqa: E402
SHARED = ROOT.parent / "shared"
SOURCE = SHARED / "data" / "shakespeare-fineweb.parquet"
ROWS_PER_GROUP = 1000


def build_corpus(path: Path, megabytes: int) -> tuple[int, int]:
    """Write the benchmark parquet; returns (documents, text bytes). Streams: one row group in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    originals = pq.read_table(SOURCE, columns=["text"]).column(0).to_pylist()
    schema = pa.schema([("text", pa.string()), ("id", pa.string()), ("dump", pa.string()), ("url", pa.string()),
                        ("date", pa.string()), ("file_path", pa.string()), ("language", pa.string()),
                        ("language_score", pa.float64()), ("token_count", pa.int64())])
    target, total, docs, rep = megabytes * 1_000_000, 0, 0, 0
    rows: list[str] = []
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        def flush() -> None:
            n = len(rows)
            writer.write_table(pa.table({
                "text": rows, "id": [f"<urn:bench:{docs - n + i}>" for i in range(n)], "dump": ["bench"] * n,
                "url": [f"https://example.com/{docs - n + i}" for i in range(n)], "date": ["2024-01-01"] * n,
                "file_path": ["bench"] * n, "language": ["en"] * n, "language_score": [1.0] * n,
                "token_count": pa.array([None] * n, pa.int64())}, schema=schema))
            rows.clear()

        while total < target:
            rng = random.Random(rep)
            for i, text in enumerate(originals):
                lines = text.split("\n")
                rng.shuffle(lines)
                doc = f"{rep}.{i}. " + "\n".join(lines)
                rows.append(doc)
                docs += 1
                total += len(doc.encode("utf-8"))
                if len(rows) == ROWS_PER_GROUP:
                    flush()
                if total >= target:
                    break
            rep += 1
        if rows:
            flush()
    return docs, total


def child_prepare(parquet: str, out: str, workers: int) -> None:
    from trainer.data.ingest import prepare

    started = time.perf_counter()
    data = prepare([parquet], Path(out), workers=workers)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "tokens": data.train_tokens + data.val_tokens, "cached": data.cached,
                      "documents": data.documents, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def child_raw(parquet: str, workers: int) -> None:
    import pyarrow.parquet as pq

    from trainer.data.tokenizer import get_encoding

    encoding = get_encoding()
    texts = pq.read_table(parquet, columns=["text"]).column(0).to_pylist()
    started = time.perf_counter()
    encoded = encoding.encode_ordinary_batch(texts, num_threads=workers)
    seconds = time.perf_counter() - started
    tokens = sum(len(t) for t in encoded) + len(encoded)  # + one <|endoftext|> each, as prepare counts
    print(json.dumps({"seconds": seconds, "tokens": tokens}))


def run_child(*args: str) -> dict:
    return child_process.run_child(__file__, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="megabytes of text to build (default 200)")
    parser.add_argument("--workers", type=int, default=0, help="threads (default: every core)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each measurement N times, interleaved, and keep the best (for a busy machine)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1
    if args.child:
        kind, *rest = args.child
        if kind == "prepare":
            child_prepare(rest[0], rest[1], workers)
        else:
            child_raw(rest[0], workers)
        return

    tmp = Path(tempfile.mkdtemp(prefix="fwtui-bench-ingest-"))
    try:
        parquet = tmp / "bench.parquet"
        started = time.perf_counter()
        docs, text_bytes = build_corpus(parquet, args.mb)
        print(f"corpus: {docs:,} documents, {text_bytes / 1e6:,.1f} MB of text, "
              f"{parquet.stat().st_size / 1e6:,.1f} MB parquet, row groups of {ROWS_PER_GROUP} "
              f"(built in {time.perf_counter() - started:.1f} s)")
        print(f"machine: {os.cpu_count()} cores, {workers} worker threads, Python {sys.version.split()[0]}")
        firsts, raws = [], []
        for i in range(max(1, args.repeat)):
            shutil.rmtree(tmp / "out", ignore_errors=True)
            firsts.append(run_child("prepare", str(parquet), str(tmp / "out")))
            raws.append(run_child("raw", str(parquet)))
        first = min(firsts, key=lambda r: r["seconds"])
        first["maxrss_kb"] = max(r["maxrss_kb"] for r in firsts)
        raw = min(raws, key=lambda r: r["seconds"])
        second = run_child("prepare", str(parquet), str(tmp / "out"))
        if args.repeat > 1:
            print("prepare runs (s):     " + ", ".join(f"{r['seconds']:.2f}" for r in firsts))
            print("raw runs (s):         " + ", ".join(f"{r['seconds']:.2f}" for r in raws))
        prepare_rate = first["tokens"] / first["seconds"]
        raw_rate = raw["tokens"] / raw["seconds"]
        print(f"prepare:              {first['tokens']:,} tokens in {first['seconds']:.2f} s = "
              f"{prepare_rate / 1e6:.2f} M tokens/s")
        print(f"encode_ordinary_batch: {raw['tokens']:,} tokens in {raw['seconds']:.2f} s = "
              f"{raw_rate / 1e6:.2f} M tokens/s ({workers} threads, texts already in memory)")
        print(f"ratio prepare/raw:    {prepare_rate / raw_rate:.2f}   (goal >= 0.85)")
        print(f"prepare peak RSS:     {first['maxrss_kb'] / 1024:.0f} MB   (goal < 1024 MB)")
        print(f"second prepare:       {second['seconds'] * 1000:.1f} ms, cached={second['cached']}   (goal < 1 s)")
        if first["tokens"] != raw["tokens"]:
            print(f"WARNING: token totals differ: prepare {first['tokens']:,} vs raw {raw['tokens']:,}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
