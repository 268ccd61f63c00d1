"""Subcommands of `fwtui`: one module each, with `main(args) -> int`, imported only when run."""
