"""A 12 GB card emulated on a bigger one: do the planner's fit/refuse verdicts and its largest micro-batch
hold when the allocator may hand out only what an RTX 4070 leaves for tensors?

    python bench/emulate_12gb.py [--presets rtx4070-12gb,rtx4070-12gb-small,rtx4070-12gb-long,gpt2-124m]
                                 [--card-mib 12282] [--compile] [--probe rtx4070-12gb-small] [--limit 256]

The cap is `torch.cuda.set_per_process_memory_fraction`: card memory less the CUDA context the planner
counts (trainer.plan.memory.CUDA_CONTEXT_BYTES), since on the real card the context takes its share outside the
allocator. For each preset it prints the planner's verdict (trainer.plan.memory.estimate_memory total_bytes
against the card, the test `fwtui plan` makes) and what two real training steps at the preset's
micro-batch did under the cap (trainer.plan.batch_finder.make_try_step: forward, backward, fused AdamW, in the
run's precision). Then the probe (trainer.plan.batch_finder.find_max_batch) for one preset under the cap,
against the planner's largest fitting micro-batch (trainer.plan.memory.largest_fitting_batch).

Eager by default (each compile of a 12-layer model costs ~40 s); --compile measures compiled runs, as the
engine trains on CUDA, with the estimate made for compiled runs too. Exit status: 0 when every verdict
held, 1 when the planner said "fits" and the preset ran out of memory (the direction that costs a user a
crashed run), 2 without CUDA. Imports only trainer/ and torch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer.plan.batch_finder import find_max_batch, make_try_step  # noqa: E402
from trainer.train.oom import free_device_memory, is_out_of_memory  # noqa: E402
from trainer.config import load_preset  # noqa: E402
from trainer.plan.memory import CUDA_CONTEXT_BYTES, estimate_memory, largest_fitting_batch  # noqa: E402

RTX_4070_MIB = 12282
"""Total memory nvidia-smi reports for a GeForce RTX 4070 (12 GB GDDR6X), in MiB."""
DEFAULT_PRESETS = "rtx4070-12gb,rtx4070-12gb-small,rtx4070-12gb-long,gpt2-124m"


def real_steps_fit(config, compiled: bool) -> tuple[bool, float]:
    """(fitted, seconds): two real training steps at the config's micro-batch under the current cap."""
    t0 = time.perf_counter()
    try:
        make_try_step(config, "cuda", compiled=compiled)(config.batch_size)
        fitted = True
    except Exception as err:  # noqa: BLE001 - only out-of-memory is an answer
        if not is_out_of_memory(err):
            raise
        fitted = False
    free_device_memory()
    return fitted, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=DEFAULT_PRESETS, help="comma-separated preset names")
    parser.add_argument("--card-mib", type=int, default=RTX_4070_MIB, help="the emulated card's memory, MiB")
    parser.add_argument("--compile", action="store_true", help="compiled steps (as the engine runs on CUDA)")
    parser.add_argument("--probe", default="rtx4070-12gb-small", help="preset the batch finder probes ('' skips)")
    parser.add_argument("--limit", type=int, default=256, help="largest micro-batch the probe tries")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("emulate_12gb.py: needs a CUDA device and none is visible; run it on the GPU machine",
              file=sys.stderr)
        return 2
    total = torch.cuda.get_device_properties(0).total_memory
    card = args.card_mib * 2**20
    cap = card - CUDA_CONTEXT_BYTES
    if cap >= total:
        print(f"emulate_12gb.py: this card ({total / 2**30:.1f} GiB) is not bigger than the emulated one",
              file=sys.stderr)
        return 2
    torch.cuda.set_per_process_memory_fraction(cap / total, 0)
    compiled = args.compile
    print(f"device: {torch.cuda.get_device_name(0)}, {total / 2**30:.1f} GiB, capped at {cap / 2**30:.2f} GiB "
          f"= {args.card_mib:,} MiB card − {CUDA_CONTEXT_BYTES / 2**20:.0f} MiB CUDA context; torch "
          f"{torch.__version__}; {'compiled' if compiled else 'eager'}\n")
    print("| preset | micro-batch | planner: estimate of the card | planner says | real steps | held? |")
    print("|---|---|---|---|---|---|")
    status = 0
    for name in [n for n in args.presets.split(",") if n]:
        config = load_preset(name).replace(compile=compiled)
        estimate = estimate_memory(config, on_cuda=True, compiled=compiled,
                                   bf16_supported=torch.cuda.is_bf16_supported())
        says_fits = estimate.total_bytes <= card
        fitted, seconds = real_steps_fit(config, compiled)
        held = says_fits == fitted
        if says_fits and not fitted:
            status = 1
        print(f"| {name} | {config.batch_size} | {estimate.total_bytes / 2**30:.2f} GiB of "
              f"{card / 2**30:.2f} ({estimate.total_bytes / card:.0%}) | {'fits' if says_fits else 'refused'} | "
              f"{'fitted' if fitted else 'out of memory'} ({seconds:.1f} s) | "
              f"{'yes' if held else 'NO'} |", flush=True)
    if args.probe:
        config = load_preset(args.probe).replace(compile=compiled)
        predicted = largest_fitting_batch(config, card, on_cuda=True, compiled=compiled,
                                          bf16_supported=torch.cuda.is_bf16_supported())
        t0 = time.perf_counter()
        search = find_max_batch(config, device="cuda", limit=args.limit)
        tried = ", ".join(f"{b}{'' if ok else '✗'}" for b, ok in search.tried)
        print(f"\nprobe {args.probe}: largest micro-batch that fitted under the cap {search.largest_fitting} "
              f"(planner's estimate {predicted}, {predicted / search.largest_fitting - 1:+.0%}); trains with "
              f"{search.batch_size} × {search.gradient_accumulation_steps} ({'; '.join(search.notes)}); "
              f"{time.perf_counter() - t0:.1f} s; tried {tried}")
    torch.cuda.set_per_process_memory_fraction(1.0, 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
