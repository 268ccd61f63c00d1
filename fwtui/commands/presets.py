"""`fwtui presets`: the preset table with exact parameter counts and tokens per iteration.

Each row names its recipe and shows its parameters under both: the preset's own, and the same shape under
the other recipe (the modern recipe's untied head adds V x C, rotary drops the position table).
"""

from __future__ import annotations

import argparse

from rich.console import Console

from fwtui.tables import TableColumn, fitted_table, table_console

from trainer.config import FIELD_NAMES, RunConfig, all_presets, preset_paths, shipped_preset_dir
from trainer.model.formulas import figures_for, format_count
from trainer.recipe import RECIPES


DROP_ORDER = ("source", "other recipe", "with pos. emb.", "block", "VRAM tier", "tokens/iter",
              "layers/heads/n_embd", "recipe")
"""Columns left out first when the table is wider than the terminal: name, fits? and params always stay."""


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
    if args.keys:
        console = Console()
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
    columns = [TableColumn("name"), TableColumn("recipe"), TableColumn("VRAM tier"),
               TableColumn("layers/heads/n_embd", "right"), TableColumn("block", "right"),
               TableColumn("params (nanoGPT)", "right"), TableColumn("with pos. emb.", "right"),
               TableColumn("other recipe", "right"), TableColumn("tokens/iter", "right"), TableColumn("source")]
    if device is not None:
        columns.append(TableColumn("fits?"))
    rows = []
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
        rows.append(row)
    title = "fwtui presets" + (f" · memory on the {device.name} ({device.memory_bytes / 1e9:.1f} GB), estimated"
                               if device else "")
    console = table_console()
    table, note = fitted_table(console, title, columns, rows, drop_order=DROP_ORDER)
    console.print(table)
    if note:
        console.print(note, style="dim", highlight=False)
    return 0
