"""`fwtui presets`: the preset table with exact parameter counts and tokens per iteration.

Each row names its recipe and shows its parameters under both: the preset's own, and the same shape under
the other recipe (the modern recipe's untied head adds V x C, rotary drops the position table).
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from trainer.config import FIELD_NAMES, RunConfig, all_presets, preset_paths, shipped_preset_dir
from trainer.model.formulas import figures_for, format_count
from trainer.recipe import RECIPES


def fits_text(config: RunConfig, memory_bytes: int) -> str:
    """"yes ≈ 9.8 GB" or "no ≈ 14.2 GB; batch ≤ 8 fits": the preset's memory estimate on a CUDA card in bf16
    with flash attention and compile (trainer.plan.memory, as trainer.plan.target plans a card)."""
    from trainer.plan.memory import estimate_memory, largest_fitting_batch
    from trainer.plan.target import for_card

    config = for_card(config)
    figures = figures_for(config)
    need = estimate_memory(config, on_cuda=True, bf16_supported=True, figures=figures).total_bytes
    if need <= memory_bytes:
        return f"yes ≈ {need / 1e9:.1f} GB"
    largest = largest_fitting_batch(config, memory_bytes, on_cuda=True, bf16_supported=True, figures=figures)
    fix = f"batch ≤ {largest} fits" if largest else "not even batch 1 fits"
    return f"no ≈ {need / 1e9:.1f} GB; {fix}"


def main(args: argparse.Namespace) -> int:
    console = Console()
    if args.keys:
        for name in FIELD_NAMES:
            default = getattr(RunConfig(), name)
            console.print(f"{name} = {default!r}", highlight=False)
        for recipe, switches in RECIPES.items():
            console.print(f"# recipe = {recipe!r} sets the switches left unset to {switches}", highlight=False)
        return 0
    device = None
    if getattr(args, "gpu", None) is not None or getattr(args, "gpu_memory", None) is not None:
        from trainer.plan.target import card_device

        device = card_device(args.gpu, args.gpu_memory, getattr(args, "peak_tflops", None))
    table = Table(title="fwtui presets" + (f" · memory on the {device.name} ({device.memory_bytes / 1e9:.1f} GB), "
                                           "estimated" if device else ""), title_justify="left")
    for column, justify in (("name", "left"), ("recipe", "left"), ("VRAM tier", "left"),
                            ("layers/heads/n_embd", "right"), ("block", "right"), ("params (nanoGPT)", "right"),
                            ("with pos. emb.", "right"), ("other recipe", "right"), ("tokens/iter", "right"),
                            ("source", "left")):
        table.add_column(column, justify=justify, no_wrap=True)
    if device is not None:
        table.add_column("fits?", no_wrap=True)
    shipped = shipped_preset_dir()
    paths = preset_paths()
    for config in all_presets():
        params = figures_for(config).params  # the figures every other screen shows for this config
        source = "shipped" if paths[config.name].parent == shipped else str(paths[config.name])
        other = "modern" if config.recipe == "nanogpt" else "nanogpt"
        as_other = figures_for(config.replace(recipe=other, **RECIPES[other])).params  # same shape
        row = [config.name, config.recipe, config.vram_tier or "-",
               f"{config.n_layer}/{config.n_head}/{config.n_embd}", str(config.block_size),
               format_count(params.nanogpt), format_count(params.total),
               f"{other} {format_count(as_other.total)}", f"{config.tokens_per_iter:,}", source]
        if device is not None:
            row.append(fits_text(config, device.memory_bytes))
        table.add_row(*row)
    console.print(table)
    return 0
