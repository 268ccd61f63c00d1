"""Training throughput of a preset on this machine's device: fwtui's Trainer against a bare loop.

    python bench/train.py [--preset cpu-tiny] [--iters 30] [--warmup 5] [--set key=value ...]
                          [--data PREPARED_DIR|PARQUET] [--peak-tflops T] [--repeat 2]

Prints tokens/s, step time, MFU (or "unknown" with the reason), peak memory, where a step's time goes
(data, forward+backward, optimizer, and the log point's read of the device: measured in a separate pass
with a device sync between the phases; with the modern recipe also the Muon groups' share of the step), and
the same model trained by a bare eager-or-compiled loop over the same batches, with the same optimizer
(trainer.train.optimizers.build_optimizer: fused AdamW, or Muon + AdamW) and no events, controls or
checkpoints, so the Trainer's overhead shows as a percentage. Without --data it
writes random GPT-2 token ids to a temporary prepared directory (the speed does not depend on the text).
Imports only trainer/, numpy and torch, so it runs on a GPU box without the console's packages.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.observe import events as ev  # noqa: E402
from trainer.data.batches import BatchLoader  # noqa: E402
from trainer.config import apply_overrides, load_preset  # noqa: E402
from trainer.data.dataset import open_prepared, write_meta  # noqa: E402
from trainer.model.formulas import flops_per_token  # noqa: E402
from trainer.observe.hardware import detect_device  # noqa: E402
from trainer.train.loop import Trainer  # noqa: E402
from trainer.observe.metrics import memory_stats, mfu  # noqa: E402
from trainer.model.gpt import GPT, ModelArgs  # noqa: E402
from trainer.model.precision import autocast_for  # noqa: E402
from trainer.train.bad_steps import BadSteps, step_unless_bad  # noqa: E402
from trainer.train.optimizers import MuonWithAdamW, build_optimizer  # noqa: E402


def random_prepared(directory: Path, tokens: int) -> Path:
    rng = np.random.default_rng(0)
    counts = {}
    for split, n in (("train", tokens), ("val", max(tokens // 10, 100_000))):
        rng.integers(0, 50257, n, dtype=np.uint16).tofile(directory / f"{split}.bin")
        counts[split] = {"tokens": n, "documents": 1}
    write_meta(directory, {"splits": counts, "tokenizer": {"name": "random", "sha256": "0" * 64}})
    return directory


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def trainer_run(config, data, run_dir: Path, peak_tflops, warmup: int) -> dict:
    """The real Trainer; wall time between consecutive Step events over the steps between them (boundaries,
    events and the log point's read of the device included)."""
    stamps: list[tuple[int, float]] = []
    started: list[ev.RunStarted] = []

    def sink(event):
        if isinstance(event, ev.Step):
            stamps.append((event.iter, time.perf_counter()))
        elif isinstance(event, ev.RunStarted):
            started.append(event)

    trainer = Trainer(config, data, run_dir, sink=sink, peak_tflops=peak_tflops)
    trainer.run()
    gaps = [(b - a) / (j - i) for (i, a), (j, b) in zip(stamps, stamps[1:]) if i >= warmup]
    return {"step": statistics.median(gaps), "trainer": trainer, "started": started[0]}


def bare_run(config, data, device: str, precision: str, compiled: bool, warmup: int, iters: int) -> float:
    """nanoGPT's inner loop and nothing else: median seconds per step after the warm-up."""
    torch.manual_seed(config.seed)
    model = GPT(ModelArgs.from_dict(config.model_args())).to(device)
    opt = build_optimizer(config, model, device)  # the Trainer's: fused AdamW, or Muon + AdamW (modern)
    run = torch.compile(model) if compiled else model
    ctx = autocast_for(precision, device)  # the precision the Trainer ran in (its RunStarted)
    loader = BatchLoader(data.train_path, block_size=config.block_size, batch_size=config.batch_size,
                         seed=config.seed, device=device)
    scaler = torch.amp.GradScaler("cuda" if device.startswith("cuda") else "cpu", enabled=precision == "float16")
    times = []
    accum = config.gradient_accumulation_steps
    for _ in range(warmup + iters):
        t0 = time.perf_counter()
        for _ in range(accum):
            x, y = loader.next()
            with ctx:
                _, loss = run(x, y)
            scaler.scale(loss / accum).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[warmup:])


@contextlib.contextmanager
def only_groups(optimizer: torch.optim.Optimizer, kind: str):
    """The optimizer with only its groups of `kind` ("muon" or "adamw"): a step of it is that part of the
    real step (same state, same arithmetic), so the two parts can be timed apart."""
    every = optimizer.param_groups
    optimizer.param_groups = [g for g in every if g["kind"] == kind]
    try:
        yield optimizer
    finally:
        optimizer.param_groups = every


def phase_breakdown(trainer: Trainer, steps: int) -> tuple[dict[str, float], float | None]:
    """Median seconds per step in each phase, with a device sync after each (so they add up on a GPU), and
    the median seconds of the Muon groups' step inside "optimizer" (None: not Muon, or fp16, whose GradScaler
    steps the optimizer once). "log read" is the host's read of the loss, norm and bad-step counters, which
    the loop does once every log_interval steps (no step waits for it otherwise)."""
    device, cfg = trainer.device, trainer.config
    phases: dict[str, list[float]] = {"data": [], "forward+backward": [], "optimizer": [], "log read": []}
    split = isinstance(trainer.optimizer, MuonWithAdamW) and not trainer.scaler.is_enabled()
    muon_s: list[float] = []
    accum = cfg.gradient_accumulation_steps
    for _ in range(steps):
        data_s = fb_s = 0.0
        for _ in range(accum):
            t0 = time.perf_counter()
            x, y = trainer.loader.next()
            sync(device)
            t1 = time.perf_counter()
            with trainer.autocast:
                _, loss = trainer.model(x, y)
            trainer.scaler.scale(loss / accum).backward()
            sync(device)
            t2 = time.perf_counter()
            data_s, fb_s = data_s + t1 - t0, fb_s + t2 - t1
        t0 = time.perf_counter()
        if trainer.scaler.is_enabled():
            trainer.scaler.unscale_(trainer.optimizer)  # as the loop: clip the true gradients
        norm = torch.nn.utils.clip_grad_norm_(trainer.params, cfg.grad_clip)
        if split:  # the loop's BadSteps.step, in two timed halves
            bad = BadSteps.verdict(loss.detach().float(), norm.float())
            sync(device)
            m0 = time.perf_counter()
            with only_groups(trainer.optimizer, "muon") as muon:
                step_unless_bad(muon, bad)
            sync(device)
            muon_s.append(time.perf_counter() - m0)
            with only_groups(trainer.optimizer, "adamw") as adamw:
                step_unless_bad(adamw, bad)
            trainer.nonfinite.record(bad)
        else:
            trainer.nonfinite.step(trainer.optimizer, trainer.scaler, loss.detach().float(), norm.float())  # as the loop
        trainer.optimizer.zero_grad(set_to_none=True)
        sync(device)
        t1 = time.perf_counter()
        trainer.nonfinite.read(loss, norm)  # at a log point only
        t2 = t3 = time.perf_counter()
        phases["data"].append(data_s)
        phases["forward+backward"].append(fb_s)
        phases["optimizer"].append((t1 - t0) + (t3 - t2))
        phases["log read"].append(t2 - t1)
    return ({name: statistics.median(values) for name, values in phases.items()},
            statistics.median(muon_s) if muon_s else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-tiny")
    parser.add_argument("--iters", type=int, default=30, help="measured steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out (compile, allocator warm-up)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data", help="a prepared directory (train.bin/val.bin/meta.json) or parquet")
    parser.add_argument("--peak-tflops", type=float)
    parser.add_argument("--log-interval", type=int, help="steps between Step events (default: the preset's; "
                        "the Trainer reads the device only then)")
    parser.add_argument("--repeat", type=int, default=2, help="alternate Trainer and bare runs this many times")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare loop (saves a second compile)")
    args = parser.parse_args(argv)

    config = load_preset(args.preset)
    total = args.warmup + args.iters
    log_interval = args.log_interval or config.log_interval
    if len([i for i in range(total) if i >= args.warmup and (i % log_interval == 0 or i == total - 1)]) < 2:
        # Step events come at log points only, and the step time is the gap between two after the warm-up
        print(f"bench/train.py: {args.iters} steps after {args.warmup} of warm-up hold fewer than 2 log points at "
              f"log_interval {log_interval}; pass --log-interval {max(1, args.iters // 3)} or more --iters",
              file=sys.stderr)
        return 2
    config = apply_overrides(config, [f"max_iters={total}", f"eval_interval={total + 1}", "eval_iters=1",
                                      f"log_interval={log_interval}",
                                      f"warmup_iters={min(config.warmup_iters, total - 1)}",
                                      *args.overrides])
    info = detect_device(config.device, args.peak_tflops)
    with tempfile.TemporaryDirectory(prefix="fwtui-bench-train-") as tmp:
        tmp = Path(tmp)
        if args.data:
            from trainer.data.ingest import resolve_data

            data = resolve_data(args.data)
        else:
            (tmp / "data").mkdir()
            data = open_prepared(random_prepared(tmp / "data", max(2_000_000, 4 * config.block_size)))
        if info.is_cuda:
            torch.cuda.reset_peak_memory_stats()
        fwtui_steps, bare_steps, result = [], [], None
        for r in range(args.repeat):
            result = trainer_run(config, data, tmp / f"run{r}", args.peak_tflops, args.warmup)
            fwtui_steps.append(result["step"])
            if not args.no_bare:
                bare_steps.append(bare_run(config, data, info.device, result["started"].precision,
                                           result["trainer"].compiled, args.warmup, args.iters))
        mem = memory_stats(info.device, info.memory_bytes)
        phases, muon_s = phase_breakdown(result["trainer"], min(args.iters, 10))

    started: ev.RunStarted = result["started"]
    fpt = flops_per_token(config)
    step = min(fwtui_steps)
    tps = config.tokens_per_iter / step
    # The peak of the precision that ran (fp32 on CUDA: TF32), as the Trainer reported it.
    util = mfu(tps, fpt, started.peak_flops)
    print(f"device        {info.name} ({info.device}) · {started.precision} · "
          f"{'compiled' if result['trainer'].compiled else 'eager'} · torch {torch.__version__} · "
          f"{torch.get_num_threads()} threads")
    print(f"preset        {config.name} · {config.n_layer}/{config.n_head}/{config.n_embd} block {config.block_size} "
          f"· micro-batch {config.batch_size} x {config.gradient_accumulation_steps} · "
          f"{config.tokens_per_iter:,} tokens/iter · {fpt / 1e6:.1f} MFLOP/token · recipe {config.recipe} "
          f"({type(result['trainer'].optimizer).__name__})")
    print(f"fwtui Trainer {tps:,.0f} tok/s · {step * 1000:.1f} ms/iter (best of {args.repeat} medians over "
          f"{args.iters} steps; runs: {', '.join(f'{s * 1000:.1f}' for s in fwtui_steps)} ms)")
    print(f"MFU           {util * 100:.1f}% of {started.peak_flops / 1e12:.1f} TFLOP/s ({started.peak_flops_source})"
          if util is not None else f"MFU           unknown ({started.peak_flops_source})")
    if info.is_cuda:
        print(f"memory        peak reserved {mem.peak_bytes / 1e9:.2f} GB · allocated now "
              f"{mem.allocated_bytes / 1e9:.2f} GB · of {mem.total_bytes / 1e9:.1f} GB")
    else:
        print(f"memory        peak RSS {mem.peak_bytes / 1e9:.2f} GB (process) · RAM {(mem.total_bytes or 0) / 1e9:.1f} GB")
    total_phase = sum(phases.values())
    print("step phases   " + " · ".join(f"{name} {seconds * 1000:.1f} ms ({seconds / total_phase * 100:.0f}%)"
                                        for name, seconds in phases.items()))
    if isinstance(result["trainer"].optimizer, MuonWithAdamW):
        print(f"Muon          {muon_s * 1000:.1f} ms a step = {muon_s / total_phase * 100:.1f}% of the phased step "
              f"(the Muon groups' optimizer step, median of {min(args.iters, 10)}; the rest of 'optimizer' is "
              f"clipping and AdamW on embeddings, head, norms)" if muon_s is not None else
              "Muon          unknown (fp16: GradScaler steps the optimizer once, so its halves are not timed apart)")
    if bare_steps:
        bare = min(bare_steps)
        print(f"bare loop     {config.tokens_per_iter / bare:,.0f} tok/s · {bare * 1000:.1f} ms/iter (runs: "
              f"{', '.join(f'{s * 1000:.1f}' for s in bare_steps)} ms)")
        print(f"overhead      Trainer vs bare: {(step / bare - 1) * 100:+.1f}% step time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
