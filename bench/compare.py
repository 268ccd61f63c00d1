"""`fwtui compare` on 5 runs of 10,000 steps each: time to the first frame and to answer each chart key.

The bench writes the runs itself (RUN/events.jsonl through the trainer's own writer: a RunStarted, a Step
every iteration, an Eval every 250), then a child interpreter (this script imports only trainer/, never
textual) opens them as `fwtui compare` does (CompareApp on the paths: the screen reads the logs on a thread
worker after its first frame), in Textual's headless driver at 120x40, and measures from the child's start
(before fwtui and textual are imported):
- first frame: to the compare screen's first refresh (CompareApp.first_frame, called after it), every run
  "reading..." in the legend;
- all curves: to the moment the last run's curve has been plotted (the screen's `reading` count is 0);
- key press: from the key's action (re-plotting every run and diffing the picture against the screen) to the
  end of the screen's next refresh (call_after_refresh), what stands between the key and the repaint. Keys
  x l m pressed while the logs are still being read (from 0.2 s after the first frame, 20 ms apart; the
  reading thread competes for the CPU and the GIL), then x x x l l m m m m once all are in (all axes, both scales, every EMA factor): the median and slowest
  of each. The terminal write after it is not in the figure (the headless driver writes nowhere).
Goals (issue 16): first frame under 1 s, key presses answered within 100 ms. The machine (CPUs, load) is
printed with the figures: on a shared machine they move with its load.

    python bench/compare.py [--runs 5] [--steps 10000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.observe.events import Eval, RunStarted, Step  # noqa: E402
from trainer.observe.runlog import EventLogWriter  # noqa: E402

CHILD = r"""
import asyncio, json, sys, time
t0 = time.perf_counter()
from fwtui.screens.compare import CompareApp, CompareChart
app = CompareApp(sys.argv[1:])
marks = {}
app.first_frame = lambda: marks.setdefault("first_frame", time.perf_counter() - t0)

async def answered(screen, action):
    # The key's action, then the screen's next refresh: the seconds until the repaint is composed.
    done = asyncio.get_running_loop().create_future()
    start = time.perf_counter()
    action()
    screen.call_after_refresh(lambda: done.done() or done.set_result(time.perf_counter()))
    return (await done) - start

async def main():
    async with app.run_test(size=(120, 40)):
        screen = app.compare
        while "first_frame" not in marks:
            await asyncio.sleep(0.001)
        reading_at_first_frame = screen.reading
        await asyncio.sleep(0.2)  # no one presses a key sooner; Textual finishes its own start-up work meanwhile
        actions = {"x": screen.action_chart_x, "l": screen.action_chart_log, "m": screen.action_chart_smoothing}
        during = []
        for key in "xlm":
            if not screen.reading:
                break
            during.append(await answered(screen, actions[key]))
            await asyncio.sleep(0.02)  # a person's keys come apart; the loop is free in between
        while screen.reading:
            await asyncio.sleep(0.002)
        all_read = time.perf_counter() - t0
        after = []
        for key in "xxxllmmmm":
            after.append(await answered(screen, actions[key]))
            await asyncio.sleep(0.02)
        print(json.dumps({"first_frame_s": marks["first_frame"], "reading_at_first_frame": reading_at_first_frame,
                          "all_read_s": all_read, "keys_while_reading_s": during, "keys_s": after,
                          "chart_lines": len(screen.query_one(CompareChart)._lines)}))
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
    print(f"{args.runs} runs x {args.steps:,} steps (120x40, headless driver) on {machine()}")
    print(f"first frame            {result['first_frame_s']:.3f} s   (goal < 1 s; "
          f"{result['reading_at_first_frame']} of {args.runs} runs still reading)")
    print(f"all curves drawn       {result['all_read_s']:.3f} s   (the logs read on the screen's thread worker)")
    for label, times in (("while reading", result["keys_while_reading_s"]), ("after reading", result["keys_s"])):
        if not times:
            print(f"key press {label}: none (the reading ended before the first key)")
            continue
        keys = sorted(times)
        print(f"key press {label}: median {keys[len(keys) // 2] * 1000:.1f} ms, slowest {keys[-1] * 1000:.1f} ms "
              f"over {len(keys)} keys   (goal < 100 ms)")
        print(f"    each, ms: {' '.join(f'{t * 1000:.0f}' for t in times)}")


def machine() -> str:
    """The CPUs and their load: the figures move with both."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), model)
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({model}), load {os.getloadavg()[0]:.1f}, "
            f"Python {platform.python_version()}")


if __name__ == "__main__":
    main()
