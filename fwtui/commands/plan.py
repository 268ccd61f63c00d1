"""`fwtui plan`: parameters, tokens, epochs, FLOPs, time, memory and energy before a run (trainer.plan.planner).

`--json` prints the plan as one JSON object; `--probe` finds the largest micro-batch by real steps on the
GPU (trainer.plan.batch_finder) and `--save-preset NAME` keeps the result as a user preset; `--measure-peak`
measures the card's bf16 matmul peak for a card not in the table. `--gpu NAME` (a card of the peak table) or
`--gpu-memory SIZE --peak-tflops T` plans for that card instead of this machine (trainer.plan.target).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

from fwtui.format import duration
from trainer.config import RunConfig, apply_overrides, load_preset
from trainer.errors import ConfigError
from trainer.model.formulas import format_count


def resolve_config(args: argparse.Namespace) -> RunConfig:
    if not args.preset:
        raise ConfigError("fwtui plan needs --preset NAME (`fwtui presets` lists them) or a .toml path")
    return apply_overrides(load_preset(args.preset), args.overrides)


def dataset_size(spec: str | None, text_column: str, val_fraction: float = 0.0005) -> tuple[int | None, bool, str]:
    """(training tokens or None, exact, where the figure came from) for --data: the training split, what the
    run's epochs divide by (trainer.data.train_split)."""
    if not spec:
        return None, False, "unknown: no --data given"
    from trainer.data.dataset import is_prepared_dir, open_prepared

    path = Path(spec).expanduser()
    if is_prepared_dir(path):
        data = open_prepared(path)
        return data.train_tokens, True, f"exact: training split of the prepared data in {path}"
    if not path.exists() and not glob.glob(str(path)):
        raise ConfigError(f"--data {spec}: no such file, directory or glob match")
    try:
        from trainer.data.token_count import count_tokens
    except ImportError:
        return None, False, "unknown: counting parquet tokens needs trainer.data.ingest (not installed here)"
    from trainer.data.train_split import training_tokens

    count = count_tokens([spec], text_column=text_column)
    return training_tokens(spec, count, text_column=text_column, val_fraction=val_fraction)


def detect(config: RunConfig, args: argparse.Namespace):
    """The device this machine would run on, with a measured peak when asked for."""
    from trainer.observe.hardware import detect_device, measure_matmul_peak

    device = detect_device(config.device, args.peak_tflops)
    peak, source = device.peak_flops, device.peak_source
    if args.measure_peak:
        if not device.is_cuda:
            raise ConfigError("--measure-peak needs a CUDA device and none is visible; pass --peak-tflops instead")
        peak = measure_matmul_peak(device.device)
        source = f"measured: bf16 matmul 8192³ on this card, {peak / 1e12:.1f} TFLOP/s"
    return device, peak, source


def gb(n: float | None) -> str:
    return "unknown" if n is None else f"{n / 1e9:.2f} GB"


def render(plan, config: RunConfig, data_how: str, device_label: str) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    console = Console()
    table = Table(title=f"fwtui plan · {config.name} on {device_label}", title_justify="left",
                  show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    approx = "" if plan.dataset_tokens_exact else "≈ "
    table.add_row("parameters", f"{format_count(plan.params)} (nanoGPT count) · "
                                f"{format_count(plan.params_with_embeddings)} with position embeddings")
    table.add_row("tokens/iter", f"{plan.tokens_per_iter:,} ({config.batch_size} × {config.block_size} × "
                                 f"{config.gradient_accumulation_steps})")
    table.add_row("dataset", data_how if plan.dataset_tokens is None
                  else f"{approx}{plan.dataset_tokens:,} tokens ({data_how})")
    table.add_row("epochs", "unknown" if plan.epochs is None else f"{approx}{plan.epochs:.2f}")
    table.add_row("FLOPs", f"≈ {plan.total_flops:.3g}: {format_count(plan.flops_per_token)} a token (6·N + 12·L·H·Q·T)"
                           f" × {plan.tokens_per_iter * config.max_iters:,} tokens + {plan.eval_count} "
                           f"evaluations ({plan.eval_flops:.2g})"
                           + (f" + {plan.hellaswag_count} HellaSwag ({plan.hellaswag_flops:.2g}, an estimate)"
                              if plan.hellaswag_count else ""))
    table.add_row("peak", plan.peak_source if plan.peak_flops is None
                  else f"{plan.peak_flops / 1e12:.1f} TFLOP/s ({plan.peak_source})")
    table.add_row("expected MFU", plan.expected_mfu_source if plan.expected_mfu is None
                  else f"{plan.expected_mfu:.0%} ({plan.expected_mfu_source})")
    if plan.est_seconds is None:
        table.add_row("time", "unknown (no peak and no earlier run on this device)")
    else:
        table.add_row("time", f"≈ {duration(plan.est_seconds)} (training {duration(plan.train_seconds)}, "
                              f"evaluations {duration(plan.eval_seconds)}, "
                              + (f"HellaSwag ≥ {duration(plan.hellaswag_seconds)}, " if plan.hellaswag_count else "")
                              + f"checkpoints {duration(plan.checkpoint_seconds)})")
    memory = f"≈ {gb(plan.est_memory_bytes)}"
    if plan.device_memory_bytes:
        memory += f" of {gb(plan.device_memory_bytes)} ({plan.est_memory_bytes / plan.device_memory_bytes:.0%})"
    table.add_row("memory per GPU" if plan.gpus > 1 else "memory", memory)
    table.add_row("", " · ".join(f"{k.replace('_', ' ')} {v / 1e9:.2f}" for k, v in plan.memory_breakdown.items()
                                 if v) + " GB")
    if plan.max_fitting_batch is not None:
        table.add_row("largest batch", f"≈ {plan.max_fitting_batch} sequences (estimate; --probe measures it)")
    if plan.energy_kwh is not None:
        cards = f" × {plan.gpus} GPUs" if plan.gpus > 1 else ""
        energy = f"≈ {plan.energy_kwh:.1f} kWh ({plan.board_watts:g} W typical board power{cards} × time)"
        if plan.cost is not None:
            energy += f" · cost ≈ {plan.cost:.2f}"
        table.add_row("energy", energy)
    console.print(table)
    if plan.warnings:
        console.print(Panel("\n".join(f"• {w}" for w in plan.warnings), title="warnings", title_align="left",
                            border_style="yellow"))
    console.print("\n".join(f"[dim]assumed: {n}[/dim]" for n in plan.notes), highlight=False)


def probe(config: RunConfig, device, args: argparse.Namespace) -> RunConfig:
    """Find the largest micro-batch by real steps; returns the config with it (saved when asked)."""
    from trainer.plan.batch_finder import find_max_batch, save_user_preset

    out = sys.stderr if args.json else sys.stdout  # --json keeps stdout for the one JSON object

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    say(f"probing micro-batch sizes on {device.name} ...")
    result = find_max_batch(config, device=device.device,
                            progress=lambda b, ok: say(f"  batch {b}: {'fits' if ok else 'out of memory'}"))
    say(f"largest that fitted: {result.largest_fitting}; with a 10% margin: batch_size={result.batch_size} "
          f"gradient_accumulation_steps={result.gradient_accumulation_steps} "
          f"({result.tokens_per_iter:,} tokens/iter, was {config.tokens_per_iter:,})")
    if result.hit_limit:
        say("note: " + result.notes[-1])
    if args.save_preset:
        path = save_user_preset(result.apply(config), args.save_preset,
                                description=f"{config.name} fitted by fwtui plan --probe on {device.name}: "
                                            f"batch {result.batch_size} × {result.gradient_accumulation_steps}")
        say(f"saved user preset {args.save_preset!r} to {path}")
    return result.apply(config)


def main(args: argparse.Namespace) -> int:
    from trainer.plan.planner import make_plan

    config = resolve_config(args)
    if args.save_preset and not args.probe:
        raise ConfigError("--save-preset saves the size --probe finds; add --probe")
    if args.price_kwh is not None and args.price_kwh < 0:
        raise ConfigError(f"--price-kwh {args.price_kwh}: must be 0 or more")
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        raise ConfigError(f"--peak-tflops {args.peak_tflops}: must be above 0")
    card = getattr(args, "gpu", None) is not None or getattr(args, "gpu_memory", None) is not None
    if card:  # plan for a card of the table, or one described (trainer.plan.target), not this machine
        from trainer.plan.target import card_device, for_card

        if args.probe or args.measure_peak:
            raise ConfigError("--probe and --measure-peak run on this machine's GPU; drop them with --gpu")
        device = card_device(args.gpu, args.gpu_memory, args.peak_tflops)
        config, peak, peak_source = for_card(config), device.peak_flops, device.peak_source
    else:
        device, peak, peak_source = detect(config, args)
    if args.probe and not device.is_cuda:
        raise ConfigError("--probe runs real training steps on a CUDA device and none is visible here; "
                          "the plan's memory estimate gives the largest batch without one")
    tokens, exact, data_how = dataset_size(args.data, config.text_column, config.val_fraction)
    fitted = None
    if args.probe:
        config = probe(config, device, args)  # the plan below is for the fitted micro-batch
    elif device.is_cuda:  # as a run on this card would start (trainer.plan.fit)
        from trainer.plan.fit import fit_to_card

        config, fitted = fit_to_card(config, device.memory_bytes, bf16_supported=device.bf16,
                                     overrides=args.overrides, world_size=getattr(args, "gpus", None) or 1,
                                     card=f"the {device.name}")
    plan = make_plan(config, dataset_tokens=tokens, dataset_tokens_exact=exact, device_name=device.name,
                     device_memory_bytes=device.memory_bytes, peak_flops=peak, peak_source=peak_source,
                     price_per_kwh=args.price_kwh, bf16_supported=device.bf16)
    if fitted:
        plan.notes.insert(0, fitted)
    if card:
        from trainer.plan.target import memory_source

        where = memory_source(device, args.gpu, args.gpu_memory)
        plan.notes.insert(0, f"planned for the {device.name}, not this machine: {where}; every figure is an "
                             "estimate until a run on the card measures it")
    gpus = getattr(args, "gpus", None) or 1
    if gpus < 1:
        raise ConfigError(f"--gpus {gpus}: give a number of GPUs, 1 or more")
    if gpus > 1:  # DDP over gpus cards like this one: memory per GPU, time for all (trainer.plan.planner)
        from trainer.plan.planner import across_gpus

        plan = across_gpus(plan, config, gpus)
    if args.json:
        out = {"preset": config.name, "device": device.device, "dataset_source": data_how,
               "planned_for": "card" if card else "this machine", **plan.to_dict()}
        print(json.dumps(out, allow_nan=False))
    else:
        label = (f"{gpus} × " if gpus > 1 else "") + device.name + (
            f" ({device.memory_bytes / 1e9:.1f} GB)" if device.memory_bytes else "")
        render(plan, config, data_how, label + (" · estimate: planned from the table" if card else ""))
    return 0
