"""`python -m fwtui ...` is `fwtui ...`: the entry point torchrun starts on every rank
(`torchrun --standalone --nproc_per_node N -m fwtui train ...`)."""

import sys

from fwtui.cli import main

if __name__ == "__main__":
    sys.exit(main())
