"""The app's data picker on a folder of FineWeb-size shards: counts listed from token_count, no frame held up.

Makes a folder of N hard links (default 15, as `sample/10BT` has) to one shard built by
`bench/big_shard.py --build-only`, opens the real setup screen on it headless (Textual's pilot, 120x40) and
prints: the seconds until every file's exact count is listed, the longest the event loop went without
running a 10 ms timer meanwhile (a frame at 60 Hz is 16.7 ms), and whether the plan's dataset tokens are the
sum of the selection (N x (token_count's sum + one <|endoftext|> a row), less the validation share the
planner holds out); then the same timer as long with
nothing to count, for the machine's own stalls (it is shared).

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
    ticks: list[tuple[float, float]] = []  # (when, seconds since the tick before)
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            ticks.append((now, now - last[0]))
            last[0] = now

        app.set_interval(0.01, tick)
        shard_list = app.screen.query_one(ShardList)
        first = None
        while len(shard_list.counts) < files:
            if first is None and shard_list.counts:
                first = time.perf_counter()
            await pilot.pause(0.01)
        done = time.perf_counter()
        plan = app.screen.query_one("#plan")
        while plan.plan is None or plan.plan.dataset_tokens is None:
            await pilot.pause(0.01)
        planned = time.perf_counter() - started
        counts = dict(shard_list.counts)
        tokens = plan.plan.dataset_tokens
    first = first or done
    startup = [gap for when, gap in ticks[1:] if when < first]
    counting = [gap for when, gap in ticks if first <= when <= done]
    return {"listed": done - started, "first": first - started, "planned": planned, "counts": counts,
            "plan_tokens": tokens, "expected": expected, "startup": stalls(startup), "counting": stalls(counting)}


def stalls(gaps: list[float]) -> dict:
    """The longest delay of a 10 ms timer beyond its period, and how many ticks came later than a frame."""
    return {"worst": max(gaps) - 0.01 if gaps else float("nan"), "ticks": len(gaps),
            "late": sum(gap - 0.01 > 1 / 60 for gap in gaps)}


async def idle(folder: Path, seconds: float) -> dict:
    """The same timer for the same time with nothing to count (one tiny file): the machine's own stalls."""
    from fwtui.app import AppOptions, FwtuiApp

    app = FwtuiApp(AppOptions(preset="cpu-tiny", data=str(folder)), gpu_probe=lambda: [], root=folder,
                   runs_dir=folder / "runs")
    gaps: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(1.0)  # past the screen's first plan
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        app.set_interval(0.01, tick)
        await pilot.pause(seconds)
    return stalls(gaps[1:])


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
        tiny = Path(tmp) / "tiny"
        tiny.mkdir()
        from tests.conftest import write_fineweb_parquet

        write_fineweb_parquet(tiny / "one.parquet", ["a short document", "another one"])
        base = asyncio.run(idle(tiny, result["listed"] - result["first"]))
    print(f"picker: {args.files} files of {shard.stat().st_size:,} bytes; the first exact count listed "
          f"{result['first']:.1f} s after the app started, all {result['listed']:.1f} s, the plan's sum "
          f"{result['planned']:.1f} s")
    for name, st in (("starting (screen, imports, first plan)", result["startup"]),
                     ("while counting", result["counting"]), ("as long with nothing to count", base)):
        print(f"  10 ms timer, {name}: longest delay {st['worst'] * 1000:.0f} ms, {st['late']} of {st['ticks']} "
              "ticks later than a 60 Hz frame (16.7 ms)")
    from trainer.data.train_split import expected_val_tokens

    held_out = expected_val_tokens(expected, 0.0005)
    first = result["counts"][0]
    print(f"  each file: {first}; the selection: {args.files} x (token_count sum + rows) = {expected:,}; the plan's "
          f"training split {result['plan_tokens']:,} {'=' if result['plan_tokens'] == expected - held_out else '!='} "
          f"that less ≈ {held_out:,} held out for validation (trainer.data.train_split)")


if __name__ == "__main__":
    main()
