"""`python -m fwtui ...` is `fwtui ...`: the entry point torchrun starts on every rank
(`torchrun --standalone --nproc_per_node N -m fwtui train ...`)."""

import os
import sys

from fwtui.cli import main

if __name__ == "__main__":
    code = main()
    if "RANK" in os.environ:  # a torchrun rank: its exit skips the interpreter's teardown (end_rank_process says why)
        from trainer.train.distributed import end_rank_process

        end_rank_process(code)
    sys.exit(code)
