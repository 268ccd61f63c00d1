"""Training throughput of a preset on this machine's device: fwtui's Trainer against a bare loop.

    python bench/train.py [--preset cpu-tiny] [--iters 30] [--warmup 5] [--set key=value ...]
                          [--data PREPARED_DIR|PARQUET] [--peak-tflops T] [--repeat 2] [--no-bare]
                          [--no-phases] [--batch-sweep [B,B,...]]

A speed run: the Trainer's steps only (SpeedTrainer: no evaluation, checkpoint or HellaSwag, so one
compile and no final write). Prints each figure the moment it exists (flushed: a run killed at a timeout
keeps what it measured): at the Trainer's last step, tokens/s, step time, MFU (or "unknown" with the
reason) and peak memory (allocated and reserved, since a reset before the run); then the memory model's
prediction for what ran (compiled or eager) against that peak; where a step's time goes (data,
forward+backward, optimizer, and the log point's read of the device: measured in a separate pass with a
device sync between the phases; with the modern recipe also the Muon groups' share of the step,
bench/step_phases.py); and the same model trained by a bare eager-or-compiled loop over the same batches,
with the same optimizer (trainer.train.optimizers.build_optimizer) and no events, controls or checkpoints,
after the Trainer is freed, with its own peak memory, so the Trainer's overhead shows as a percentage.
--batch-sweep measures the Trainer at several micro-batches instead, the tokens per iteration kept.
Without --data it writes random GPT-2 token ids to a temporary prepared directory (the speed does not
depend on the text). Imports only trainer/, numpy and torch, so it runs on a GPU box without the console's
packages.
"""

from __future__ import annotations

import argparse
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
from trainer.plan.fit import fit_to_card  # noqa: E402
from trainer.plan.memory import accumulation_for, estimate_memory, largest_fitting_batch  # noqa: E402
from trainer.train.oom import free_device_memory, is_out_of_memory  # noqa: E402
from trainer.train.optimizers import MuonWithAdamW, build_optimizer  # noqa: E402
from bench.step_phases import only_groups, phase_breakdown, sync  # noqa: E402,F401 - bench/muon.py imports these here


def random_prepared(directory: Path, tokens: int) -> Path:
    rng = np.random.default_rng(0)
    counts = {}
    for split, n in (("train", tokens), ("val", max(tokens // 10, 100_000))):
        rng.integers(0, 50257, n, dtype=np.uint16).tofile(directory / f"{split}.bin")
        counts[split] = {"tokens": n, "documents": 1}
    write_meta(directory, {"splits": counts, "tokenizer": {"name": "random", "sha256": "0" * 64}})
    return directory


class SpeedTrainer(Trainer):
    """The real Trainer with its steps only: no evaluation (its no-grad eval-mode graph would be a second
    compile before the first step, a third at a short last batch), no checkpoint (a 1.5 GB write at
    gpt2-124m's end) and no HellaSwag (main clears hellaswag_interval). What it times, the step and its
    boundaries, is the full Trainer's; bench/eval.py, bench/checkpoint.py and bench/hellaswag.py time the rest."""

    def _evaluate_and_save(self, it: int, final: bool = False, save: bool = True) -> None:
        return None

    def _save(self, it: int, reason: str, must_succeed: bool = False) -> None:
        return None


def say(line: str) -> None:
    """Print one figure now: a stage killed at its timeout keeps every line printed before."""
    print(line, flush=True)


def peak_memory(device: str) -> tuple[int, int] | None:
    """(peak allocated, peak reserved) bytes since the last reset_peak_memory_stats; None off CUDA."""
    if not device.startswith("cuda"):
        return None
    return torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)


def fresh_peak(device: str) -> None:
    """Release what the last run left and restart the peak counters, so each run's peak is its own."""
    free_device_memory()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def trainer_run(config, data, run_dir: Path, peak_tflops, warmup: int, headline: str | None = None) -> dict:
    """The real Trainer (SpeedTrainer); wall time between consecutive Step events over the steps between
    them (boundaries, events and the log point's read of the device included). With `headline`, the
    figures are printed at the last Step event, the moment they exist."""
    stamps: list[tuple[int, float]] = []
    started: list[ev.RunStarted] = []
    out: dict = {}

    def sink(event):
        if isinstance(event, ev.Step) and event.log_point:  # live points between (issue 20) are not timed here
            stamps.append((event.iter, time.perf_counter()))
            if event.iter == config.max_iters - 1:
                out.update(figures_of(stamps, warmup, config, started[0], trainer.device))
                if headline is not None:
                    say(f"{headline} {describe(out, started[0])}")
        elif isinstance(event, ev.RunStarted):
            started.append(event)
            if headline is not None:
                say(f"{headline} running: {event.device_name} ({event.device}) · {event.precision} · "
                    f"{'compiled' if event.compiled else 'eager'} · micro-batch {config.batch_size} x "
                    f"{config.gradient_accumulation_steps} · {config.tokens_per_iter:,} tokens/iter")

    trainer = SpeedTrainer(config, data, run_dir, sink=sink, peak_tflops=peak_tflops)
    trainer.run()
    return {**out, "trainer": trainer, "started": started[0]}


def figures_of(stamps, warmup: int, config, started: ev.RunStarted, device: str) -> dict:
    """Step time (median gap after the warm-up), tokens/s, MFU and the peak memory so far."""
    gaps = [(b - a) / (j - i) for (i, a), (j, b) in zip(stamps, stamps[1:]) if i >= warmup]
    step = statistics.median(gaps)
    tps = config.tokens_per_iter / step
    return {"step": step, "tps": tps, "mfu": mfu(tps, flops_per_token(config), started.peak_flops),
            "memory": peak_memory(device)}


def describe(figures: dict, started: ev.RunStarted) -> str:
    """tokens/s · ms/iter · MFU · peak memory, one line."""
    util = figures["mfu"]
    mfu_text = (f"MFU {util * 100:.1f}% of {started.peak_flops / 1e12:.1f} TFLOP/s ({started.peak_flops_source})"
                if util is not None else f"MFU unknown ({started.peak_flops_source})")
    memory = figures["memory"]
    mem_text = (f"peak allocated {memory[0] / 1e9:.2f} GB, reserved {memory[1] / 1e9:.2f} GB" if memory
                else "peak memory: CPU (see below)")
    return f"{figures['tps']:,.0f} tok/s · {figures['step'] * 1000:.1f} ms/iter · {mfu_text} · {mem_text}"


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


def plan_line(config, trainer: Trainer, measured: tuple[int, int] | None) -> str:
    """The memory model's allocator figure for what ran (compiled or eager) against the measured peak
    reserved: the compiled-path constants every default CUDA run uses, checked on the card."""
    estimate = estimate_memory(config, on_cuda=trainer.info.is_cuda, compiled=trainer.compiled,
                               bf16_supported=trainer.precision != "float16" or not trainer.info.is_cuda)
    text = f"plan          ≈ {estimate.allocator_bytes / 1e9:.2f} GB predicted (trainer.plan.memory, {estimate.precision}, " \
           f"{'compiled' if estimate.compiled else 'eager'})"
    if measured:
        text += f" · measured peak reserved {measured[1] / 1e9:.2f} GB ({(estimate.allocator_bytes / measured[1] - 1) * 100:+.0f}%)"
    return text


def batch_sweep(config, data, tmp: Path, args, sizes: list[int]) -> None:
    """tokens/s, MFU and peak memory at each micro-batch, the tokens per iteration kept (accumulation
    adjusted); each size is a fresh compile (dynamo reset: no dynamic-shape graph), printed as measured."""
    for b in sizes:
        accum = accumulation_for(config, b)
        point = config.replace(batch_size=b, gradient_accumulation_steps=accum)
        torch._dynamo.reset()
        fresh_peak(config.device if config.device != "auto" else detect_device("auto").device)
        try:
            trainer_run(point, data, tmp / f"sweep{b}", args.peak_tflops, args.warmup,
                        headline=f"sweep b={b:<4} x{accum:<3}")
        except Exception as err:  # noqa: BLE001 - out of memory ends the sweep, said in one line
            say(f"sweep b={b:<4} x{accum:<3} failed: {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}")
            if not is_out_of_memory(err):
                raise
            break
        finally:
            free_device_memory()


def sweep_sizes(spec: str, config, info) -> list[int]:
    """--batch-sweep's sizes: a comma list, or "auto": the preset's micro-batch, x2, x4, x8, up to the
    largest the memory model fits on this device (every size divides the sequences an iteration)."""
    if spec != "auto":
        return [int(v) for v in spec.split(",") if v.strip()]
    sequences = config.batch_size * config.gradient_accumulation_steps
    cap = sequences
    if info.is_cuda and info.memory_bytes:
        cap = max(1, largest_fitting_batch(config, info.memory_bytes, on_cuda=True))
    sizes = [b for b in (config.batch_size * k for k in (1, 2, 4, 8)) if b <= cap and sequences % b == 0]
    return sizes or [config.batch_size]


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
    parser.add_argument("--no-phases", action="store_true", help="skip the phased pass (step phases, Muon share)")
    parser.add_argument("--batch-sweep", nargs="?", const="auto", metavar="B,B,...",
                        help="tokens/s at each micro-batch instead (tokens per iteration kept; default: the "
                             "preset's x1, x2, x4, x8 up to what the memory model fits)")
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
    # A speed run: no HellaSwag (the presets' interval would score, or download, at the end), no evaluation
    # or checkpoint (SpeedTrainer).
    config = apply_overrides(config, [f"max_iters={total}", f"eval_interval={total + 1}", "eval_iters=1",
                                      f"log_interval={log_interval}", "hellaswag_interval=0",
                                      f"warmup_iters={min(config.warmup_iters, total - 1)}",
                                      *args.overrides])
    info = detect_device(config.device, args.peak_tflops)
    if info.is_cuda and not args.batch_sweep:  # the micro-batch a run on this card starts with (trainer.plan.fit)
        config, fitted = fit_to_card(config, info.memory_bytes, bf16_supported=info.bf16, overrides=args.overrides,
                                     card=f"the {info.name}")
        if fitted:
            say(f"fitted        {fitted}")
    say(f"bench/train.py {config.name} · torch {torch.__version__} · {info.name} ({info.device}) · "
        f"{torch.get_num_threads()} threads · {config.n_layer}/{config.n_head}/{config.n_embd} block "
        f"{config.block_size} · {flops_per_token(config) / 1e6:.1f} MFLOP/token · recipe {config.recipe}")
    with tempfile.TemporaryDirectory(prefix="fwtui-bench-train-") as tmp:
        tmp = Path(tmp)
        if args.data:
            from trainer.data.ingest import resolve_data

            data = resolve_data(args.data)
        else:
            (tmp / "data").mkdir()
            data = open_prepared(random_prepared(tmp / "data", max(2_000_000, 4 * config.block_size)))
        if args.batch_sweep:
            batch_sweep(config, data, tmp, args, sweep_sizes(args.batch_sweep, config, info))
            return 0
        fwtui_steps, bare_steps = [], []
        for r in range(args.repeat):
            fresh_peak(info.device)
            result = trainer_run(config, data, tmp / f"run{r}", args.peak_tflops, args.warmup,
                                 headline=f"fwtui Trainer run {r + 1}:")
            fwtui_steps.append(result["step"])
            trainer, started = result["trainer"], result["started"]
            if r == 0:
                say(plan_line(config, trainer, result["memory"]))
                if not info.is_cuda:
                    mem = memory_stats(info.device, info.memory_bytes)
                    say(f"memory        peak RSS {mem.peak_bytes / 1e9:.2f} GB (process) · RAM "
                        f"{(mem.total_bytes or 0) / 1e9:.1f} GB")
                if not args.no_phases:
                    print_phases(trainer, min(args.iters, 10))
            compiled = trainer.compiled
            del trainer, result
            if not args.no_bare:
                fresh_peak(info.device)
                bare = bare_run(config, data, info.device, started.precision, compiled, args.warmup, args.iters)
                bare_steps.append(bare)
                memory = peak_memory(info.device)
                say(f"bare loop run {r + 1}: {config.tokens_per_iter / bare:,.0f} tok/s · {bare * 1000:.1f} ms/iter"
                    + (f" · peak allocated {memory[0] / 1e9:.2f} GB, reserved {memory[1] / 1e9:.2f} GB" if memory else ""))
            free_device_memory()

    step = min(fwtui_steps)
    say(f"fwtui Trainer {config.tokens_per_iter / step:,.0f} tok/s · {step * 1000:.1f} ms/iter (best of "
        f"{args.repeat} medians over {args.iters} steps; runs: {', '.join(f'{s * 1000:.1f}' for s in fwtui_steps)} ms)")
    if bare_steps:
        bare = min(bare_steps)
        say(f"overhead      Trainer vs bare: {(step / bare - 1) * 100:+.1f}% step time (bare best "
            f"{bare * 1000:.1f} ms/iter)")
    return 0


def print_phases(trainer: Trainer, steps: int) -> None:
    phases, muon_s = phase_breakdown(trainer, steps)
    total_phase = sum(phases.values())
    say("step phases   " + " · ".join(f"{name} {seconds * 1000:.1f} ms ({seconds / total_phase * 100:.0f}%)"
                                      for name, seconds in phases.items()))
    if isinstance(trainer.optimizer, MuonWithAdamW):
        say(f"Muon          {muon_s * 1000:.1f} ms a step = {muon_s / total_phase * 100:.1f}% of the phased step "
            f"(the Muon groups' optimizer step, median of {steps}; the rest of 'optimizer' is clipping and AdamW "
            "on embeddings, head, norms)" if muon_s is not None else
            "Muon          unknown (fp16: GradScaler steps the optimizer once, so its halves are not timed apart)")


if __name__ == "__main__":
    sys.exit(main())
