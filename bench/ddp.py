"""Throughput of 1 and N processes through torchrun (gloo on CPU, nccl on CUDA), and the time in all-reduce.

    python bench/ddp.py [--preset cpu-tiny] [--procs 1,2] [--iters 30] [--set key=value ...] [--cpu]

For each process count it runs `torchrun --standalone --nproc_per_node N bench/ddp.py --worker ...`: the real
run_training path (rank 0 writes the run, DDP, accumulation split over the ranks, tokens per iteration the
preset's), on random GPT-2 token ids in a temporary prepared directory. Each worker then times an
all-reduce of one gradient's worth of float32 (the bytes DDP reduces per optimizer step) over 10 repeats.
Prints per count: tokens/s (median of the logged windows after the first third of the iterations), step
time, the all-reduce time per step and its share of the step, and the scaling efficiency against 1 process
(tokens/s on N / (N x tokens/s on 1)), and the evaluations (at iteration 0 and at the end: each rank takes its
share of the fixed windows): their median seconds and the val loss at iteration 0, the same weights in every
count, so the same loss to float tolerance. On CPU the processes share the machine's cores, so the efficiency
measures the cores, not the interconnect: the GPU figure is for a machine with several GPUs.
Imports only trainer/, numpy and torch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.config import apply_overrides, load_preset  # noqa: E402
from trainer.data.dataset import write_meta  # noqa: E402
from trainer.train.distributed import end_rank_process  # noqa: E402


def random_prepared(directory: Path, tokens: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", tokens), ("val", tokens // 10)):
        rng.integers(0, 50257, n, dtype=np.uint16).tofile(directory / f"{split}.bin")
    write_meta(directory, {"splits": {"train": {"tokens": tokens, "documents": 1},
                                      "val": {"tokens": tokens // 10, "documents": 1}},
                           "tokenizer": {"name": "random ids", "sha256": "0" * 64}})
    return directory


def worker(args: argparse.Namespace) -> int:
    """One rank: train through run_training, then time one gradient's all-reduce."""
    import torch.distributed as dist

    from trainer.runs.launch import RunRequest, run_training

    config = apply_overrides(load_preset(args.preset), args.overrides)
    world = int(os.environ.get("WORLD_SIZE", 1))
    cuda = torch.cuda.is_available() and config.device != "cpu"
    device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if cuda else "cpu"
    if world > 1:  # the group made here; run_training uses it and leaves it for the timing below
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
    run_training(RunRequest(preset=config, data=args.data, out=Path(args.out)), lambda event: None)
    if world > 1:
        from trainer.model.formulas import count_params

        grads = torch.zeros(count_params(config).total, dtype=torch.float32, device=device)
        dist.all_reduce(grads)  # warm-up (connections, buffers)
        seconds = []
        for _ in range(10):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            dist.all_reduce(grads)
            if cuda:
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - t0)
        if dist.get_rank() == 0:
            Path(args.out, "allreduce.json").write_text(json.dumps({"seconds": statistics.median(seconds),
                                                                    "bytes": grads.numel() * 4}))
        dist.destroy_process_group()
    return 0


def launch(procs: int, args: argparse.Namespace, data: Path, out: Path) -> dict:
    overrides = [f"max_iters={args.iters}", f"lr_decay_iters={args.iters}", f"eval_interval={args.iters}",
                 "log_interval=1", "always_save_checkpoint=false", *args.overrides]
    if args.cpu:
        overrides.append("device=cpu")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.cpu or not torch.cuda.is_available():
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // procs))  # the cores shared out
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
               str(Path(__file__).resolve()), "--worker", "--preset", args.preset, "--data", str(data),
               "--out", str(out), *sum((["--set", o] for o in overrides), [])]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{procs} process(es) failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    steps = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()[1:]]
    evals = [e for e in steps if e.get("kind") == "eval"]
    steps = [e for e in steps if e.get("kind") == "step"]
    steady = steps[len(steps) // 3:] or steps
    result = {"tokens_per_sec": statistics.median(e["tokens_per_sec"] for e in steady),
              "step_seconds": statistics.median(e["step_seconds"] for e in steady)}
    result["eval_seconds"] = statistics.median(e["seconds"] for e in evals) if evals else None
    result["val_at_0"] = next((e["val_loss"] for e in evals if e["iter"] == 0), None)
    reduce_file = out / "allreduce.json"
    result["allreduce"] = json.loads(reduce_file.read_text()) if reduce_file.exists() else None
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="cpu-tiny")
    parser.add_argument("--procs", default="1,2")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--cpu", action="store_true", help="CPU processes (gloo) even where CUDA is visible")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    counts = [int(n) for n in args.procs.split(",")]
    config = apply_overrides(load_preset(args.preset), args.overrides)
    lcm = int(np.lcm.reduce(counts))
    if config.gradient_accumulation_steps % lcm:
        args.overrides.append(f"gradient_accumulation_steps={lcm}")  # every count must divide it
        print(f"gradient_accumulation_steps set to {lcm} so that {args.procs} processes all divide it")
    with tempfile.TemporaryDirectory() as tmp:
        data = random_prepared(Path(tmp) / "data", 2_000_000)
        results = {n: launch(n, args, data, Path(tmp) / f"run{n}") for n in counts}
    base = results.get(1)
    print(f"preset {args.preset} · {args.iters} iterations · torch {torch.__version__} · "
          f"{'CPU (gloo)' if args.cpu or not torch.cuda.is_available() else 'CUDA (nccl)'}")
    for n, r in results.items():
        line = f"{n} process(es): {r['tokens_per_sec']:,.0f} tokens/s · {r['step_seconds'] * 1000:.1f} ms/step"
        if r["allreduce"]:
            ms = r["allreduce"]["seconds"] * 1000
            line += (f" · all-reduce of {r['allreduce']['bytes'] / 1e6:.1f} MB: {ms:.1f} ms per step "
                     f"({ms / (r['step_seconds'] * 1000):.0%} of the step)")
        if base and n > 1:
            line += f" · scaling efficiency {r['tokens_per_sec'] / (n * base['tokens_per_sec']):.2f}"
        if r["eval_seconds"] is not None:
            line += f" · an evaluation {r['eval_seconds']:.2f} s, val loss at iter 0 {r['val_at_0']:.6f}"
        print(line)
    return 0


if __name__ == "__main__":
    end_rank_process(main())  # under torchrun: no interpreter teardown (see its docstring)
