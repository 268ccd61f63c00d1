"""A FineWeb shard at its real size: `prepare --count`, `prepare`, and tiktoken's own limit on ~2.15 GB.

Builds one parquet file in FineWeb's schema of about --gb GB (default 2.15, the size of
`HuggingFaceFW/fineweb` data/CC-MAIN-2013-20/000_00000.parquet) with row groups of 1,000 documents (datatrove's
ParquetWriter writes a row group per batch of 1,000, as FineWeb's files were written). Each document is two
contiguous passages of ../shared/data/shakespeare-fineweb.parquet (lines kept whole, joined by newlines), about
~1,000 tokens on average (log-normal lengths), so the text is real English and ~1M rows fill the size. Its
`token_count` column is exact without tokenizing the shard: GPT-2's pre-tokenizer never joins a token across a
newline, so a document's count is the sum of its lines' counts plus one per newline (checked on a sample here,
and in full by prepare's total). Then, each in its own process (peak RSS is that process's own):
  1. `fwtui prepare --count` : seconds, and its total against the column's sum (goal < 5 s, exact);
  2. `fwtui prepare`         : tokens/s of the whole process (start, read, encode, write), peak RSS (< 0.5 GB);
  3. tiktoken's encode_ordinary_batch on every core over the same texts, a row group's batch at a time, timing
     the encode calls only (reading excluded): the tokenizer's own limit; ratio prepare/raw (goal >= 1.0);
and prints the machine. The files are deleted at the end unless --keep.

    python bench/big_shard.py [--gb 2.15] [--dir DIR] [--keep] [--skip-raw]
    python bench/big_shard.py --build-only --dir DIR      # build and keep the shard, measure nothing
    python bench/big_shard.py --shard DIR/000_00000.parquet  # measure a shard built before (then deleted)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import child_process  # noqa: E402
SOURCE = Path(os.environ.get("FWTUI_SHAKESPEARE", ROOT.parent / "shared" / "data" / "shakespeare-fineweb.parquet"))
ROWS_PER_GROUP = 1000
MEAN_TOKENS = 870
SAMPLE_CHECK = 2000
"""Documents whose token_count is checked against tiktoken while building."""


def lines_and_counts():
    """Every non-blank line of the source (stripped: no whitespace at either end) and its GPT-2 token count."""
    import numpy as np
    import pyarrow.parquet as pq

    from trainer.data.tokenizer import get_encoding

    lines = [line.strip() for text in pq.read_table(SOURCE, columns=["text"]).column(0).to_pylist()
             for line in (text or "").splitlines() if line.strip()]
    counts = np.array([len(t) for t in get_encoding().encode_ordinary_batch(lines)], dtype=np.int64)
    return lines, counts


def build(path: Path, target_bytes: int, seed: int = 0) -> dict:
    """Write the shard, a row group at a time, until the file reaches target_bytes; returns what it holds."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from trainer.data.tokenizer import get_encoding

    lines, counts = lines_and_counts()
    corpus = "\n".join(lines)  # a passage of lines[a:b] is one slice of it: corpus[offset[a]:offset[b] - 1]
    offset = np.concatenate([[0], np.cumsum([len(line) + 1 for line in lines])])
    prefix = np.concatenate([[0], np.cumsum(counts)])  # tokens of lines[a:b] = prefix[b] - prefix[a]
    n = len(lines)
    rng = np.random.default_rng(seed)
    schema = pa.schema([("text", pa.string()), ("id", pa.string()), ("dump", pa.string()), ("url", pa.string()),
                        ("date", pa.string()), ("file_path", pa.string()), ("language", pa.string()),
                        ("language_score", pa.float64()), ("token_count", pa.int64())])
    encoding, checked, wrong = get_encoding(), 0, 0
    rows = tokens = text_bytes = 0
    started = time.perf_counter()
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        while path.stat().st_size < target_bytes:
            # two passages a document, its length in tokens log-normal around MEAN_TOKENS (many short, a few long)
            half = np.maximum(8.0, rng.lognormal(np.log(MEAN_TOKENS) - 0.5, 1.0, (ROWS_PER_GROUP, 2)) / 2)
            starts = rng.integers(0, n - 1, (ROWS_PER_GROUP, 2))
            ends = np.minimum(n, np.maximum(starts + 1, np.searchsorted(prefix, prefix[starts] + half)))
            # each line's tokens, one "\n" between lines of a passage, and one joining the two passages
            token_counts = ((prefix[ends] - prefix[starts]) + (ends - starts - 1)).sum(axis=1) + 1
            texts = [corpus[offset[a]:offset[b] - 1] + "\n" + corpus[offset[c]:offset[d] - 1]
                     for (a, c), (b, d) in zip(starts.tolist(), ends.tolist())]
            if checked < SAMPLE_CHECK:
                real = [len(t) for t in encoding.encode_ordinary_batch(texts[:200])]
                wrong += sum(a != b for a, b in zip(real, token_counts[:200].tolist()))
                checked += len(real)
            k = len(texts)
            column = pa.array(texts, pa.string())
            writer.write_table(pa.table({
                "text": column, "id": [f"<urn:uuid:bench-{rows + i:08d}>" for i in range(k)],
                "dump": ["CC-MAIN-2013-20"] * k, "url": [f"https://example.com/shakespeare/{rows + i}" for i in range(k)],
                "date": ["2013-05-18T05:48:54Z"] * k,
                "file_path": ["s3://commoncrawl/crawl-data/CC-MAIN-2013-20/bench.warc.gz"] * k,
                "language": ["en"] * k, "language_score": [0.95] * k,
                "token_count": pa.array(token_counts, pa.int64())}, schema=schema), row_group_size=ROWS_PER_GROUP)
            rows += k
            tokens += int(token_counts.sum())
            text_bytes += pc.sum(pc.binary_length(column)).as_py()
    return {"rows": rows, "tokens": tokens, "text_bytes": text_bytes, "bytes": path.stat().st_size,
            "seconds": time.perf_counter() - started, "checked": checked, "wrong": wrong}


def peak_rss_kb() -> int:
    """This process's own peak RSS (VmHWM starts afresh at exec; ru_maxrss keeps the forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_count(parquet: str) -> None:
    from trainer.data.token_count import count_tokens

    started = time.perf_counter()
    count = count_tokens([parquet])
    print(json.dumps({"seconds": time.perf_counter() - started, "tokens": count.tokens, "exact": count.exact,
                      "maxrss_kb": peak_rss_kb()}))


def child_prepare(parquet: str, out: str) -> None:
    from trainer.data.ingest import prepare

    started = time.perf_counter()
    data = prepare([parquet], Path(out))
    print(json.dumps({"seconds": time.perf_counter() - started, "tokens": data.train_tokens + data.val_tokens,
                      "documents": data.documents, "maxrss_kb": peak_rss_kb()}))


def child_raw(parquet: str, every: str = "1") -> None:
    import pyarrow.parquet as pq

    from trainer.data.tokenizer import get_encoding

    encoding, workers = get_encoding(), os.cpu_count() or 1
    pf = pq.ParquetFile(parquet)
    seconds = tokens = 0.0
    for rg in range(0, pf.metadata.num_row_groups, int(every)):  # every Nth row group: a sample of the texts
        texts = pf.read_row_group(rg, columns=["text"]).column(0).to_pylist()
        started = time.perf_counter()
        encoded = encoding.encode_ordinary_batch(texts, num_threads=workers)
        seconds += time.perf_counter() - started
        tokens += sum(len(t) for t in encoded) + len(encoded)  # + one <|endoftext|> each, as prepare writes
    print(json.dumps({"seconds": seconds, "tokens": int(tokens),
                      "maxrss_kb": peak_rss_kb()}))


def described(parquet: Path) -> dict:
    """What --build-only recorded beside the shard (built.json), checked against the file's size."""
    record = parquet.parent / "built.json"
    if not parquet.is_file() or not record.is_file():
        sys.exit(f"{parquet} or the built.json beside it is missing (a measured shard is deleted unless --keep); "
                 "build one with --build-only --dir DIR")
    shard = json.loads(record.read_text())
    if shard["bytes"] != parquet.stat().st_size:
        sys.exit(f"{parquet} is not the shard built.json describes; build it again")
    return shard


def run_child(*args: str) -> dict:
    return child_process.run_child(__file__, *args)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores ({cpu}), load average {load:.1f} at start, Python {sys.version.split()[0]}"


def load_now() -> str:
    """The 1-minute load average and the time, printed after each phase: the machine is shared."""
    return f"load {os.getloadavg()[0]:.1f} at {time.strftime('%H:%M:%S', time.gmtime())} UTC"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.15, help="size of the shard in GB (default 2.15)")
    parser.add_argument("--dir", help="where to build (default a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the shard and the prepared output")
    parser.add_argument("--skip-raw", action="store_true", help="skip the tiktoken baseline")
    parser.add_argument("--raw-every", type=int, default=1,
                        help="time the tiktoken baseline on every Nth row group only (its rate, on a busy machine)")
    parser.add_argument("--build-only", action="store_true", help="build the shard (kept) and stop")
    parser.add_argument("--shard", help="measure this shard, built by --build-only (deleted after, unless --keep)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        {"count": child_count, "prepare": child_prepare, "raw": child_raw}[kind](*rest)
        return

    tmp = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="fwtui-bench-big-"))
    tmp.mkdir(parents=True, exist_ok=True)
    parquet = Path(args.shard) if args.shard else tmp / "000_00000.parquet"
    try:
        print(f"machine: {machine()}", flush=True)
        if args.shard:
            shard = described(parquet)
        else:
            shard = build(parquet, int(args.gb * 1e9))
            (parquet.parent / "built.json").write_text(json.dumps(shard))
        print(f"shard: {shard['bytes']:,} bytes, {shard['rows']:,} rows in row groups of {ROWS_PER_GROUP:,}, "
              f"{shard['text_bytes'] / 1e9:.2f} GB of text, token_count sum {shard['tokens']:,} "
              f"(built in {shard['seconds']:.0f} s; token_count checked on {shard['checked']:,} documents: "
              f"{shard['wrong']} wrong)", flush=True)
        if args.build_only:
            args.keep = True
            return
        count = run_child("count", str(parquet))
        print(f"prepare --count: {count['tokens']:,} tokens in {count['seconds']:.2f} s (goal < 5 s), "
              f"{'exact' if count['exact'] else 'an estimate'}, "
              f"{'equal to' if count['tokens'] == shard['tokens'] else 'NOT equal to'} the column's sum; "
              f"peak RSS {count['maxrss_kb'] / 1024:.0f} MB", flush=True)
        prep = run_child("prepare", str(parquet), str(tmp / "out"))
        expected = shard["tokens"] + shard["rows"]
        print(f"prepare: {prep['tokens']:,} tokens in {prep['seconds']:.1f} s = "
              f"{prep['tokens'] / prep['seconds'] / 1e6:.2f} M tokens/s (whole process); peak RSS "
              f"{prep['maxrss_kb'] / 1024:.0f} MB (goal < 512 MB); tokens {'=' if prep['tokens'] == expected else '!='} "
              f"token_count sum + one <|endoftext|> a row ({expected:,}); {load_now()}", flush=True)
        shutil.rmtree(tmp / "out", ignore_errors=True)
        if not args.skip_raw:
            raw = run_child("raw", str(parquet), str(args.raw_every))
            sample = f", one row group in {args.raw_every}" if args.raw_every > 1 else ""
            print(f"encode_ordinary_batch: {raw['tokens']:,} tokens in {raw['seconds']:.1f} s of encoding = "
                  f"{raw['tokens'] / raw['seconds'] / 1e6:.2f} M tokens/s ({os.cpu_count()} threads, a row group "
                  f"at a time{sample}, reading excluded); {load_now()}", flush=True)
            print(f"ratio prepare/raw: {(prep['tokens'] / prep['seconds']) / (raw['tokens'] / raw['seconds']):.2f} "
                  "(goal >= 1.0)", flush=True)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            parquet.unlink(missing_ok=True)
            (parquet.parent / "built.json").unlink(missing_ok=True)
            shutil.rmtree(tmp / "out", ignore_errors=True)
            if not args.dir:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
