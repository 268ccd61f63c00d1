"""Muon's cost: the optimizer step's share of a training step, Muon + AdamW against nanoGPT's fused AdamW.

    python bench/muon.py [--preset cpu-tiny-modern] [--steps 10] [--warmup 2] [--repeat 3] [--set KEY=VALUE]

For the preset's model, a training step as the loop runs it, on random GPT-2 token ids (the time does not
depend on the text): forward+backward over the accumulation micro-batches in the run's precision, the
gradient clip, the optimizer step through trainer.train.bad_steps.step_unless_bad (the loop's call: no host
sync), zero_grad; a device sync between the phases, so they add up on a GPU too. Two optimizers from
trainer.train.optimizers.build_optimizer on the same model, in alternating blocks of --steps (so a busy
machine's load falls on both alike): the recipe's (modern: Muon for the blocks' matrices, the hand-written
AdamW for embeddings, head, norms; its two halves timed apart) and nanoGPT's (muon=false: torch's fused AdamW
on every parameter). Printed: the median of each phase over every measured step, the optimizer's share of
its step, and Muon's extra cost = (Muon + AdamW step - fused AdamW step) / the modern step. Eager unless the
preset compiles on CUDA. Imports only trainer/ and torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.train import only_groups, sync  # noqa: E402 - the same split of the step as bench/train.py
from trainer.config import apply_overrides, load_preset  # noqa: E402
from trainer.model.gpt import GPT, ModelArgs  # noqa: E402
from trainer.model.precision import autocast_for, precision_for  # noqa: E402
from trainer.observe.hardware import detect_device  # noqa: E402
from trainer.train.bad_steps import BadSteps, step_unless_bad  # noqa: E402
from trainer.train.optimizers import MuonWithAdamW, build_optimizer  # noqa: E402

PHASES = ("forward+backward", "clip", "muon", "adamw", "zero_grad")


def timed_steps(model, run, optimizer, config, batches, device: str, autocast, count: int) -> dict[str, list[float]]:
    """`count` training steps; seconds per phase per step. "muon" is 0 for an optimizer without Muon."""
    times: dict[str, list[float]] = {name: [] for name in PHASES}
    accum = config.gradient_accumulation_steps
    for group in optimizer.param_groups:
        group["lr"] = config.learning_rate
    for _ in range(count):
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        for micro in range(accum):
            x, y = batches[micro % len(batches)]
            with autocast:
                _, loss = run(x, y)
            (loss / accum).backward()
            loss_sum += loss.detach().float()
        sync(device)
        t1 = time.perf_counter()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        bad = BadSteps.verdict(loss_sum / accum, norm.float())
        sync(device)
        t2 = time.perf_counter()
        if isinstance(optimizer, MuonWithAdamW):
            with only_groups(optimizer, "muon") as muon:
                step_unless_bad(muon, bad)
            sync(device)
            t3 = time.perf_counter()
            with only_groups(optimizer, "adamw") as adamw:
                step_unless_bad(adamw, bad)
        else:
            t3 = t2
            step_unless_bad(optimizer, bad)
        sync(device)
        t4 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        t5 = time.perf_counter()
        for name, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            times[name].append(seconds)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-tiny-modern")
    parser.add_argument("--steps", type=int, default=10, help="measured steps a block")
    parser.add_argument("--warmup", type=int, default=2, help="steps left out before each block")
    parser.add_argument("--repeat", type=int, default=3, help="blocks of each optimizer, alternating")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    config = apply_overrides(load_preset(args.preset), args.overrides)
    if not config.muon:
        print(f"{config.name}: recipe {config.recipe} trains without Muon; pick a modern preset or --set "
              f"recipe=modern", file=sys.stderr)
        return 2
    info = detect_device(config.device)
    precision = precision_for(config.dtype, info)
    autocast = autocast_for(precision, info.device)
    torch.manual_seed(config.seed)
    model = GPT(ModelArgs.from_dict(config.model_args())).to(info.device)
    run = torch.compile(model) if config.compile and info.is_cuda else model
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(min(config.gradient_accumulation_steps, 4)):  # a few distinct micro-batches, reused
        ids = torch.randint(0, min(config.vocab_size, 50257), (config.batch_size, config.block_size + 1),
                            generator=gen)
        batches.append((ids[:, :-1].contiguous().to(info.device), ids[:, 1:].contiguous().to(info.device)))
    optimizers = {"modern": build_optimizer(config, model, info.device),
                  "nanogpt": build_optimizer(apply_overrides(config, ["muon=false"]), model, info.device)}
    times = {name: {phase: [] for phase in PHASES} for name in optimizers}
    for _ in range(args.repeat):
        for name, optimizer in optimizers.items():
            timed_steps(model, run, optimizer, config, batches, info.device, autocast, args.warmup)
            for phase, values in timed_steps(model, run, optimizer, config, batches, info.device, autocast,
                                             args.steps).items():
                times[name][phase] += values
    median = {name: {phase: statistics.median(values) for phase, values in per.items()}
              for name, per in times.items()}
    muon_params = sum(p.numel() for g in optimizers["modern"].param_groups if g["kind"] == "muon" for p in g["params"])
    every = sum(p.numel() for p in model.parameters())
    load = f" · load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"device     {info.name} ({info.device}) · {precision} · {'compiled' if run is not model else 'eager'} · "
          f"torch {torch.__version__} · {torch.get_num_threads()} threads · {os.cpu_count()} CPUs{load}")
    print(f"preset     {config.name} · {config.n_layer}/{config.n_head}/{config.n_embd} block {config.block_size} · "
          f"micro-batch {config.batch_size} x {config.gradient_accumulation_steps} · {every:,} parameters, "
          f"{muon_params:,} of them on Muon · medians of {args.repeat} x {args.steps} steps each")
    steps = {}
    for name, label in (("modern", "Muon + AdamW"), ("nanogpt", "fused AdamW ")):
        m = median[name]
        step = sum(m.values())
        optimizer_s = m["muon"] + m["adamw"]
        steps[name] = (step, optimizer_s)
        halves = (f": Muon {m['muon'] * 1000:.2f} ms ({m['muon'] / step * 100:.1f}%), AdamW "
                  f"{m['adamw'] * 1000:.2f} ms ({m['adamw'] / step * 100:.1f}%)" if name == "modern" else "")
        print(f"{label} step {step * 1000:.1f} ms · forward+backward {m['forward+backward'] * 1000:.1f} ms · clip "
              f"{m['clip'] * 1000:.2f} ms · optimizer {optimizer_s * 1000:.2f} ms = {optimizer_s / step * 100:.1f}% "
              f"of the step{halves}")
    (modern_step, modern_opt), (_, fused_opt) = steps["modern"], steps["nanogpt"]
    print(f"Muon's extra cost over fused AdamW: {(modern_opt - fused_opt) * 1000:+.2f} ms a step = "
          f"{(modern_opt - fused_opt) / modern_step * 100:+.1f}% of the modern step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
