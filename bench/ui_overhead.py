"""What the app costs a run: cpu-tiny tokens/s headless against the same run inside the app, in one process.

Both runs use the same preset, overrides and data (a generated FineWeb-schema parquet, tokenized once
through the cache). Headless is trainer.run.run_training on a plain thread with a sink that drops every
event (a thread, like the app's engine worker: see run_headless); the app run is
FwtuiApp started with --start under Textual's headless driver at 120x40 (it lays out and renders every
frame, without a terminal to write to). Throughput is read from each run's RUN/events.jsonl: tokens
between the first and the last Step over the wall time between them (the startup, the evaluation at
iteration 0 and the final one are outside that window). Runs alternate (headless, app, headless, app...)
so drift in the machine's load hits both alike.

    python bench/ui_overhead.py [--iters 400] [--repeats 2] [--set batch_size=2 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def step_throughput(run_dir: Path) -> tuple[float, int]:
    """(tokens/s between the first and last Step, number of Steps) from RUN/events.jsonl; checks that
    both kinds of run trained the same thing (RunStarted's config, device and threads)."""
    steps = []
    with open(run_dir / "events.jsonl", encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            if event.get("kind") == "step":
                steps.append(event)
            elif event.get("kind") == "run_started":
                config = event["config"]
                SEEN.setdefault("config", config)
                if config != SEEN["config"]:
                    raise SystemExit(f"{run_dir}: trained another config than the first run: "
                                     f"{ {k: v for k, v in config.items() if SEEN['config'].get(k) != v} }")
    if len(steps) < 3:
        raise SystemExit(f"{run_dir}: only {len(steps)} Step events; raise --iters")
    first, last = steps[1], steps[-1]  # steps[0] carries the first iteration's warm-up
    return (last["tokens_seen"] - first["tokens_seen"]) / (last["time"] - first["time"]), len(steps)


SEEN: dict = {}


def run_headless(data: Path, out: Path, overrides: list[str]) -> float:
    """run_training with a sink that drops events, on a thread of its own like the app's worker: torch's
    OpenMP team behaves differently on the main thread (on a busy 2-core machine the main thread trained
    cpu-tiny 3-4x slower than any other thread), which would swamp the UI's cost."""
    from trainer.controls import Controls
    from trainer.run import RunRequest, run_training

    request = RunRequest(preset="cpu-tiny", data=str(data), out=out, overrides=overrides)
    worker = threading.Thread(target=run_training, args=(request, lambda event: None, Controls()),
                              name="headless-engine")
    worker.start()
    worker.join()
    return step_throughput(out)[0]


def run_in_app(data: Path, out: Path, overrides: list[str]) -> float:
    from fwtui.app import AppOptions, FwtuiApp

    async def drive() -> None:
        app = FwtuiApp(AppOptions(preset="cpu-tiny", data=str(data), out=str(out), overrides=overrides,
                                  start=True), gpu_probe=lambda: [], root=out.parent)
        async with app.run_test(size=(120, 40)) as pilot:
            while app.session is None or not app.session.done.is_set():
                await pilot.pause(0.2)
            await pilot.pause(0.5)

    asyncio.run(drive())
    return step_throughput(out)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=400, help="iterations per run (default 400)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind, alternating (default 2)")
    parser.add_argument("--log-interval", type=int, default=10, help="a Step event every N iterations")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="more overrides for both runs, e.g. --set batch_size=2 on a slow machine")
    args = parser.parse_args()

    shared_tokenizer = ROOT.parent / "shared" / "tokenizers" / "r50k_base.tiktoken"
    if "FWTUI_TOKENIZER_FILE" not in os.environ and shared_tokenizer.is_file():
        os.environ["FWTUI_TOKENIZER_FILE"] = str(shared_tokenizer)
    from tests.conftest import synthetic_texts, write_fineweb_parquet

    overrides = [f"max_iters={args.iters}", f"eval_interval={args.iters}", f"log_interval={args.log_interval}",
                 "val_fraction=0.02", *args.extra]
    headless, in_app = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(work / "cache")
        os.environ["XDG_STATE_HOME"] = str(work / "state")
        data = write_fineweb_parquet(work / "bench.parquet", synthetic_texts(1000), row_group_size=100)
        print(f"cpu-tiny, {' '.join('--set ' + o for o in overrides)}; {args.repeats} runs each, alternating")
        for i in range(args.repeats):
            t0 = time.perf_counter()
            headless.append(run_headless(data, work / f"headless-{i}", overrides))
            print(f"  headless run {i + 1}: {headless[-1]:,.0f} tokens/s ({time.perf_counter() - t0:.0f} s)")
            t0 = time.perf_counter()
            in_app.append(run_in_app(data, work / f"app-{i}", overrides))
            print(f"  in-app run {i + 1}:   {in_app[-1]:,.0f} tokens/s ({time.perf_counter() - t0:.0f} s)")
    h, a = statistics.median(headless), statistics.median(in_app)
    print(f"headless {h:,.0f} tokens/s · in the app {a:,.0f} tokens/s · app/headless {a / h:.3f} "
          f"(the app costs {100 * (1 - a / h):.1f}%; goal: 2% or less)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
