"""Evaluation time and coverage: the Evaluator's fixed windows against the old random-window estimate.

    python bench/eval.py [--preset cpu-tiny] [--data PREPARED_DIR|PARQUET] [--repeat 3] [--set key=value ...]

Before (`random_window_estimate`, reproduced here as the loop had it until issue 12): eval_iters batches of
batch_size windows at random offsets per split, from seeded streams, so the same batches each time but
windows that overlap. After: trainer.train.evaluator.Evaluator, eval_iters x batch_size non-overlapping
windows evenly spaced over the split, read once. Prints, for each: the median seconds of an evaluation
(both splits) over --repeat runs after one warm-up, the tokens each split's loss covers, how many distinct
tokens those are (overlap shows as fewer distinct than covered), and the losses. The model is the preset's
shape at its seeded initialisation: the time does not depend on the weights. Without --data it prepares
the demo corpus (the stdlib's docstrings, trainer.data.demo) in a temporary directory. Imports only
trainer/, numpy and torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.config import apply_overrides, load_preset  # noqa: E402
from trainer.data.batches import BatchLoader  # noqa: E402
from trainer.data.dataset import open_prepared  # noqa: E402
from trainer.data.ingest import prepare  # noqa: E402
from trainer.model.gpt import GPT, ModelArgs  # noqa: E402
from trainer.train.evaluator import Evaluator  # noqa: E402

OLD_STREAMS = {"train": 1, "val": 2}  # the eval streams the loop's BatchLoaders used before the Evaluator


@torch.no_grad()
def random_window_estimate(model, loaders: dict[str, BatchLoader], eval_iters: int) -> dict[str, float]:
    """The old estimate: per split, eval_iters seeded random batches (position reset to 0 each time)."""
    model.eval()
    out = {}
    for split, loader in loaders.items():
        loader.load_state({"position": 0})
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            x, y = loader.next()
            _, loss = model(x, y)
            losses[k] = loss
        out[split] = losses.mean().item()
    model.train()
    return out


def distinct_tokens(starts: np.ndarray, block_size: int) -> int:
    """Distinct predicted-token positions covered by windows starting at `starts` (targets o+1 .. o+T)."""
    covered = np.zeros(int(starts.max()) + block_size + 2, dtype=bool)
    for o in starts:
        covered[o + 1:o + block_size + 1] = True
    return int(covered.sum())


def timed_alternately(fns: list, repeat: int) -> list[tuple[float, object]]:
    """Median seconds and last result of each function, run in turn `repeat` times after one warm-up
    each (allocator, first-touch of the pages), so a change in the machine's load hits all of them alike."""
    results = [fn() for fn in fns]
    seconds: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            results[i] = fn()
            seconds[i].append(time.perf_counter() - t0)
    return [(statistics.median(s), r) for s, r in zip(seconds, results)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-tiny")
    parser.add_argument("--data", help="a prepared directory or a parquet file (default: the demo corpus)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    config = apply_overrides(load_preset(args.preset), args.set)
    with tempfile.TemporaryDirectory() as tmp:
        if args.data and Path(args.data, "meta.json").is_file():
            data = open_prepared(args.data)
        else:
            source = args.data
            if source is None:
                from trainer.data.demo import build_demo_corpus

                source = build_demo_corpus(Path(tmp) / "demo.parquet")
            data = prepare(source, Path(tmp) / "prepared", val_fraction=0.05)
        torch.manual_seed(config.seed)
        model = GPT(ModelArgs.from_dict(config.model_args()))
        b, t, k = config.batch_size, config.block_size, config.eval_iters
        loaders = {split: BatchLoader(path, block_size=t, batch_size=b, seed=config.seed, stream=OLD_STREAMS[split])
                   for split, path in (("train", data.train_path), ("val", data.val_path))}
        evaluator = Evaluator(train_path=data.train_path, val_path=data.val_path, block_size=t, batch_size=b,
                              eval_iters=k, device="cpu")
        (before_s, before), (after_s, after) = timed_alternately(
            [lambda: random_window_estimate(model, loaders, k), lambda: evaluator.evaluate(model)], args.repeat)
        print(f"preset        {config.name} · eval_iters {k} x batch {b} x block {t} · CPU, "
              f"{torch.get_num_threads()} threads · torch {torch.__version__}")
        print(f"corpus        train {data.train_tokens:,} tokens · val {data.val_tokens:,} tokens")
        for split in ("train", "val"):
            old_starts = np.concatenate([loaders[split].offsets(i) for i in range(k)])
            new_starts = evaluator.offsets[split]
            print(f"{split:<5} before  {len(old_starts) * t:>7,} tokens, {distinct_tokens(old_starts, t):>7,} distinct"
                  f" · loss {before[split]:.4f}   (random windows, overlapping)")
            print(f"{split:<5} after   {after.tokens[split]:>7,} tokens, {distinct_tokens(new_starts, t):>7,} distinct"
                  f" · loss {after.losses[split]:.4f}   (fixed windows, none overlapping)")
        print(f"time          before {before_s * 1000:.1f} ms · after {after_s * 1000:.1f} ms per evaluation "
              f"(both splits; median of {args.repeat}, run in turn, after a warm-up; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
