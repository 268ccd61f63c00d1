"""`fwtui compare` on 5 runs of 10,000 steps each: time to the first frame and to answer each chart key.

The bench writes the runs itself (RUN/events.jsonl through the trainer's own writer: a RunStarted, a Step
every iteration, an Eval every 250), then a child interpreter (this script imports only trainer/, never
textual) opens them as `fwtui compare` does, in Textual's headless driver at 120x40:
- first frame: from before the runs are read to the first full paint of the chart (reading 50,000 steps
  included);
- key press: the key's action on the UI thread (re-plotting every run and diffing the picture against
  the screen, what stands between the key and the repaint), for x x x l l m m m m (all axes, both scales,
  every EMA factor), the slowest and the median. The terminal write after it is not in the figure.
Goals (issue 16): first frame under 1 s, key presses answered within 100 ms.

    python bench/compare.py [--runs 5] [--steps 10000]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.observe.events import Eval, RunStarted, Step  # noqa: E402
from trainer.observe.runlog import EventLogWriter  # noqa: E402

CHILD = r"""
import asyncio, json, statistics, sys, time
t0 = time.perf_counter()
from fwtui.screens.compare import CompareApp, CompareChart, load_compared
runs = [load_compared(p) for p in sys.argv[1:]]
loaded = time.perf_counter() - t0
app = CompareApp(runs)
async def main():
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        first = time.perf_counter() - t0
        chart = app.compare.query_one(CompareChart)
        actions = {"x": app.compare.action_chart_x, "l": app.compare.action_chart_log,
                   "m": app.compare.action_chart_smoothing}
        times = []
        for key in "xxxllmmmm":
            # The key's work on the UI thread: the action, re-plotting every run, diffing the picture.
            start = time.perf_counter()
            actions[key]()
            times.append(time.perf_counter() - start)
            await pilot.pause()  # the repaint goes out (not timed: the test driver's own wait is ~0.1 s)
        print(json.dumps({"read_s": loaded, "first_frame_s": first, "keys_s": times,
                          "chart_lines": len(chart._lines)}))
asyncio.run(main())
"""


def write_run(run: Path, steps: int, k: int) -> None:
    run.mkdir(parents=True)
    writer = EventLogWriter(run)
    writer(RunStarted(time=0.0, run_dir=str(run), config={"name": f"bench-{k}"}, params=10_000_000,
                      params_with_embeddings=11_000_000, device="cpu", device_name="bench", device_memory_bytes=None,
                      peak_flops=None, peak_flops_source="bench", flops_per_token=60_000_000,
                      tokens_per_iter=8192, dataset_tokens=10**9, start_iter=0, max_iters=steps,
                      precision="float32", compiled=False))
    for i in range(steps):
        loss = 3.0 + 7.5 * math.exp(-i / (800 + 100 * k)) + 0.05 * math.sin(i / 7)
        writer(Step(time=i * 0.2, iter=i, loss=loss, lr=6e-4, step_seconds=0.2, tokens_per_sec=40_960.0,
                    mfu=None, mem_allocated_bytes=None, mem_reserved_bytes=None, mem_peak_bytes=None,
                    mem_total_bytes=None, tokens_seen=i * 8192, epoch=i * 8192 / 1e9, elapsed_seconds=i * 0.2,
                    eta_seconds=None))
        if i and i % 250 == 0:
            writer(Eval(time=i * 0.2, iter=i, train_loss=loss, val_loss=loss + 0.05, best_val_loss=loss + 0.05,
                        seconds=1.0))
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"run-{k}" for k in range(args.runs)]
        for k, path in enumerate(paths):
            write_run(path, args.steps, k)
        out = subprocess.run([sys.executable, "-c", CHILD, *map(str, paths)], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1])
    if out.returncode:
        sys.exit(f"compare child failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    keys = sorted(result["keys_s"])
    print(f"{args.runs} runs x {args.steps:,} steps (120x40, headless driver)")
    print(f"reading the runs       {result['read_s']:.3f} s")
    print(f"first frame            {result['first_frame_s']:.3f} s   (goal < 1 s)")
    print(f"key press, median      {keys[len(keys) // 2] * 1000:.1f} ms")
    print(f"key press, slowest     {keys[-1] * 1000:.1f} ms   (goal < 100 ms; keys x x x l l m m m m)")


if __name__ == "__main__":
    main()
