"""One rank of a tiny several-process run, started by torchrun from tests/test_ddp.py and bench/ddp.py.

    torchrun --standalone --nproc_per_node N tests/ddp_child.py PREPARED RUN DUMP --max-iters I --accum A
        [--resume] [--eval-interval E]

It trains through trainer.runs.launch.run_training (the path `fwtui train` takes under torchrun), with the
tiny vocabulary-256 model of tests/tiny_trainer_child.py. After the run (or a stop), every rank writes
DUMP/rank{R}.pt: its final parameters, iteration, data position and world size, so the parent can check
that the ranks agree; DUMP/rank{R}.pid is written at the start, so the parent can kill one rank.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer.observe import events as ev  # noqa: E402
from trainer.runs.launch import RunRequest, run_training  # noqa: E402
from trainer.train.controls import Controls  # noqa: E402
from trainer.train.loop import Trainer  # noqa: E402
from trainer.train.signals import stop_on_signals  # noqa: E402
from trainer.train.distributed import end_rank_process  # noqa: E402

from tests.tiny_trainer_child import tiny  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("run")
    parser.add_argument("dump")
    parser.add_argument("--max-iters", type=int, default=8)
    parser.add_argument("--accum", type=int, default=1)
    parser.add_argument("--eval-interval", type=int, default=4)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    rank = int(os.environ.get("RANK", 0))
    dump = Path(args.dump)
    dump.mkdir(parents=True, exist_ok=True)
    (dump / f"rank{rank}.pid").write_text(str(os.getpid()))

    finished_run = Trainer.run

    def run_and_dump(trainer: Trainer) -> str:
        try:
            return finished_run(trainer)
        finally:
            torch.save({"params": {k: v.detach().clone() for k, v in trainer.raw_model.state_dict().items()},
                        "iter": trainer.iter_num, "position": trainer.loader.position,
                        "world_size": trainer.dist.world_size}, dump / f"rank{rank}.pt")

    Trainer.run = run_and_dump  # the one test hook: the real Trainer, its state read after the run

    def sink(event: ev.Event) -> None:
        if isinstance(event, (ev.Step, ev.CheckpointSaved, ev.Finished, ev.Failed, ev.Warning)):
            print(f"rank {rank} {event.kind} {getattr(event, 'iter', '')} "
                  f"{getattr(event, 'loss', '') or getattr(event, 'message', '')}", flush=True)

    config = tiny(max_iters=args.max_iters, lr_decay_iters=args.max_iters, eval_interval=args.eval_interval,
                  gradient_accumulation_steps=args.accum, dropout=0.0,
                  vocab_size=50304, block_size=16, batch_size=2)  # run_training validates vocab as `fwtui train`
    controls = Controls()
    with stop_on_signals(controls):
        run_training(RunRequest(preset=config, data=args.data, out=Path(args.run), resume=args.resume), sink,
                     controls)
    return 0


if __name__ == "__main__":
    end_rank_process(main())  # under torchrun: no interpreter teardown (see its docstring)
