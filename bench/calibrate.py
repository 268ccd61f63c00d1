"""Calibrate the planner on a GPU: predicted against measured peak memory and step time, per preset.

    python bench/calibrate.py [--presets 24gb-large,rtx4070-12gb,lt16gb] [--steps 8] [--eager]

For each preset whose memory estimate fits the card, this builds the model as the engine does (the run's
precision from trainer.model.precision, fused AdamW, torch.compile unless --eager), runs a few real optimizer steps on random tokens
with gradient accumulation cut to 2 micro-batches (memory does not depend on it; the time per
micro-batch is scaled back to the preset's accumulation), and prints a Markdown table for the README:
the estimate's allocator bytes against torch.cuda.max_memory_reserved(), and the predicted time per
iteration (FLOPs ÷ (peak × the planner's expected MFU)) against the measured one. Needs CUDA; on a
machine without it, it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer.config import all_presets, load_preset  # noqa: E402
from trainer.model.formulas import flops_per_token  # noqa: E402
from trainer.observe.hardware import detect_device  # noqa: E402
from trainer.plan.memory import estimate_memory  # noqa: E402
from trainer.model.gpt import GPT, ModelArgs  # noqa: E402
from trainer.plan.planner import default_mfu  # noqa: E402
from trainer.model.precision import autocast_for, peak_for_precision, precision_for  # noqa: E402

MICRO_STEPS = 2  # gradient accumulation used for the measurement


def measure(config, steps: int, compiled: bool, precision: str) -> tuple[int, float]:
    """(max_memory_reserved bytes, median seconds per micro-batch after warm-up) for real training steps."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = GPT(ModelArgs.from_dict(config.model_args())).cuda()
    optimizer = torch.optim.AdamW(model.optimizer_groups(config.weight_decay), lr=config.learning_rate,
                                  betas=(config.beta1, config.beta2), fused=True)
    forward = torch.compile(model) if compiled else model
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "float16")
    shape = (config.batch_size, config.block_size)
    times = []
    for step in range(steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(MICRO_STEPS):
            x = torch.randint(0, 50257, shape, device="cuda")  # (B, T)
            y = torch.randint(0, 50257, shape, device="cuda")
            with autocast_for(precision, "cuda"):
                logits, loss = forward(x, y)
            scaler.scale(loss / MICRO_STEPS).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or 1e9)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= 2:  # the first steps compile and warm the allocator
            times.append((time.perf_counter() - t0) / MICRO_STEPS)
    reserved = torch.cuda.max_memory_reserved()
    del model, optimizer, forward, logits, loss, x, y
    torch.cuda.empty_cache()
    return reserved, statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", help="comma-separated preset names (default: every preset that fits)")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per preset (first 2 are warm-up)")
    parser.add_argument("--eager", action="store_true", help="no torch.compile (faster to start)")
    args = parser.parse_args(argv)
    if args.steps < 3:
        parser.error("--steps must be 3 or more (2 warm-up steps are not timed)")
    if not torch.cuda.is_available():
        print("calibrate.py: needs a CUDA device and none is visible; run it on the GPU machine",
              file=sys.stderr)
        return 2
    device = detect_device("cuda")
    names = args.presets.split(",") if args.presets else [c.name for c in all_presets() if c.name != "cpu-tiny"]
    compiled = not args.eager
    print(f"device: {device.name}, {device.memory_bytes / 2**30:.1f} GiB, peak {device.peak_source}; "
          f"torch {torch.__version__}; {'compiled' if compiled else 'eager'}; {args.steps} steps × "
          f"{MICRO_STEPS} micro-batches\n")
    print("| preset | micro-batch | predicted GiB | measured GiB (max reserved) | error | "
          "predicted s/iter | measured s/iter | error | measured MFU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        config = load_preset(name).replace(compile=compiled)
        precision = precision_for(config.dtype, device)  # the loop's own decision
        estimate = estimate_memory(config, on_cuda=True, compiled=compiled, bf16_supported=device.bf16)
        peak, _ = peak_for_precision(device.peak_flops, device.peak_source, precision, on_cuda=True)
        if estimate.total_bytes > 0.95 * device.memory_bytes:
            print(f"| {name} | {config.batch_size} | {estimate.allocator_bytes / 2**30:.1f} | skipped: the estimate "
                  "does not fit | | | | | |")
            continue
        try:
            reserved, micro_seconds = measure(config, args.steps, compiled, precision)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            print(f"| {name} | {config.batch_size} | {estimate.allocator_bytes / 2**30:.1f} | out of memory "
                  "| | | | | |")
            continue
        iter_seconds = micro_seconds * config.gradient_accumulation_steps
        flops = flops_per_token(config) * config.tokens_per_iter
        mfu, _ = default_mfu(device.name, compiled)
        predicted = flops / (peak * mfu) if peak else None
        measured_mfu = flops / iter_seconds / peak if peak else None
        mem_error = estimate.allocator_bytes / reserved - 1
        time_cells = (f"{predicted:.2f} | {iter_seconds:.2f} | {predicted / iter_seconds - 1:+.0%}"
                      if predicted else f"unknown | {iter_seconds:.2f} | ")
        print(f"| {name} ({precision}) | {config.batch_size} | {estimate.allocator_bytes / 2**30:.2f} | {reserved / 2**30:.2f} | "
              f"{mem_error:+.0%} | {time_cells} | "
              f"{'unknown' if measured_mfu is None else f'{measured_mfu:.1%}'} |", flush=True)
    print("\npredicted memory excludes the CUDA context (not in max_memory_reserved); "
          "the planner adds it against the card's memory.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
