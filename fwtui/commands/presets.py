"""`fwtui presets`: the preset table with exact parameter counts and tokens per iteration."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from trainer.config import FIELD_NAMES, RunConfig, all_presets, preset_paths, shipped_preset_dir
from trainer.model.formulas import figures_for, format_count


def main(args: argparse.Namespace) -> int:
    console = Console()
    if args.keys:
        for name in FIELD_NAMES:
            default = getattr(RunConfig(), name)
            console.print(f"{name} = {default!r}", highlight=False)
        return 0
    table = Table(title="fwtui presets", title_justify="left")
    for column, justify in (("name", "left"), ("VRAM tier", "left"), ("layers/heads/n_embd", "right"),
                            ("block", "right"), ("params (nanoGPT)", "right"), ("with pos. emb.", "right"),
                            ("tokens/iter", "right"), ("source", "left")):
        table.add_column(column, justify=justify, no_wrap=True)
    shipped = shipped_preset_dir()
    paths = preset_paths()
    for config in all_presets():
        params = figures_for(config).params  # the figures every other screen shows for this config
        source = "shipped" if paths[config.name].parent == shipped else str(paths[config.name])
        table.add_row(config.name, config.vram_tier or "-",
                      f"{config.n_layer}/{config.n_head}/{config.n_embd}", str(config.block_size),
                      format_count(params.nanogpt), format_count(params.total),
                      f"{config.tokens_per_iter:,}", source)
    console.print(table)
    return 0
