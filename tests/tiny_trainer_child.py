"""A tiny training run in its own process, for the tests that kill it or resume it in another process.

    python tests/tiny_trainer_child.py PREPARED_DIR RUN_DIR --max-iters N [--stop-at K] [--eval-interval E]
        [--resume]

--stop-at K stops (with a checkpoint) at the step boundary K, as Ctrl-C would. Prints one line per step
("step ITER LOSS" with the loss as a float hex, bitwise) so the parent can compare runs exactly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.observe import events as ev  # noqa: E402
from trainer.config import RunConfig  # noqa: E402
from trainer.train.controls import Controls  # noqa: E402
from trainer.data.dataset import open_prepared  # noqa: E402
from trainer.train.loop import Trainer  # noqa: E402


def tiny(**changes) -> RunConfig:
    """A model of vocabulary 256 (ids of the test data are below it): steps take milliseconds."""
    base = dict(name="tiny", n_layer=1, n_head=2, n_embd=32, block_size=32, vocab_size=256, batch_size=4,
                gradient_accumulation_steps=1, learning_rate=1e-2, min_lr=1e-3, max_iters=40, warmup_iters=5,
                lr_decay_iters=40, eval_interval=10, eval_iters=2, log_interval=1, compile=False, device="cpu")
    base.update(changes)
    return RunConfig(**base)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("run")
    parser.add_argument("--max-iters", type=int, default=40)
    parser.add_argument("--stop-at", type=int)
    parser.add_argument("--eval-interval", type=int, default=10)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    controls = Controls()

    def sink(event):
        if isinstance(event, ev.Step):
            print(f"step {event.iter} {event.loss.hex()}", flush=True)
            if args.stop_at is not None and event.iter == args.stop_at - 1:
                controls.stop("test")
        elif isinstance(event, ev.CheckpointSaved):
            print(f"checkpoint {event.iter}", flush=True)

    config = tiny(max_iters=args.max_iters, lr_decay_iters=args.max_iters, eval_interval=args.eval_interval,
                  dropout=args.dropout)
    Trainer(config, open_prepared(args.data), args.run, sink=sink, controls=controls, resume=args.resume).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
