"""The app's data picker on a folder of FineWeb-size shards: counts listed from token_count, no frame held up.

Makes a folder of N hard links (default 15, as `sample/10BT` has) to one shard built by
`bench/big_shard.py --build-only`, opens the real setup screen on it headless (Textual's pilot, 120x40) and
prints: the seconds until every file's exact count is listed, the longest the event loop went without
running a 10 ms timer meanwhile (a frame at 60 Hz is 16.7 ms), and whether the plan's dataset tokens are the
sum of the selection (N x (token_count's sum + one <|endoftext|> a row)).

    python bench/picker_shards.py SHARD.parquet [--files 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def measure(folder: Path, files: int, expected: int) -> dict:
    from fwtui.app import AppOptions, FwtuiApp
    from fwtui.widgets.shard_list import ShardList

    app = FwtuiApp(AppOptions(preset="cpu-tiny", data=str(folder)), gpu_probe=lambda: [], root=folder,
                   runs_dir=folder / "runs")
    gaps: list[float] = []
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        app.set_interval(0.01, tick)
        shard_list = app.screen.query_one(ShardList)
        while len(shard_list.counts) < files:
            await pilot.pause(0.01)
        listed = time.perf_counter() - started
        plan = app.screen.query_one("#plan")
        while plan.plan is None or plan.plan.dataset_tokens is None:
            await pilot.pause(0.01)
        planned = time.perf_counter() - started
        counts = dict(shard_list.counts)
        tokens = plan.plan.dataset_tokens
    gaps = gaps[1:]  # the first tick also waits out the screen's own mounting
    worst = max(gaps) - 0.01 if gaps else float("nan")
    late = sum(gap - 0.01 > 1 / 60 for gap in gaps)
    return {"listed": listed, "planned": planned, "worst_stall": worst, "ticks": len(gaps), "late": late,
            "counts": counts, "plan_tokens": tokens, "expected": expected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shard", help="a parquet shard with a token_count column")
    parser.add_argument("--files", type=int, default=15)
    args = parser.parse_args()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    shard = Path(args.shard).resolve()
    pf = pq.ParquetFile(shard)
    column_sum = sum(pc.sum(pf.read_row_group(i, columns=["token_count"]).column(0)).as_py()
                     for i in range(pf.metadata.num_row_groups))
    expected = args.files * (column_sum + pf.metadata.num_rows)
    with tempfile.TemporaryDirectory(prefix="fwtui-picker-", dir=shard.parent) as tmp:
        folder = Path(tmp)
        for i in range(args.files):
            os.link(shard, folder / f"{i:03d}_00000.parquet")  # hard links: the same bytes, no more disk
        result = asyncio.run(measure(folder, args.files, expected))
    print(f"picker: {args.files} files of {shard.stat().st_size:,} bytes; every exact count listed "
          f"{result['listed']:.1f} s after the app started, the plan's sum {result['planned']:.1f} s")
    print(f"  event loop while counting: longest stall {result['worst_stall'] * 1000:.1f} ms beyond a 10 ms timer, "
          f"{result['late']} of {result['ticks']} ticks later than a 60 Hz frame (16.7 ms)")
    first = result["counts"][0]
    print(f"  each file: {first}; plan dataset tokens {result['plan_tokens']:,} "
          f"{'=' if result['plan_tokens'] == expected else '!='} {args.files} x (token_count sum + rows) = "
          f"{expected:,}")


if __name__ == "__main__":
    main()
