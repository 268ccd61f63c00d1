"""One rank of the split evaluation and HellaSwag, started by torchrun from tests/test_ddp_eval.py.

    torchrun --standalone --nproc_per_node N tests/ddp_eval_child.py PREPARED HELLASWAG.jsonl DUMP

Every rank joins the gloo group (trainer.train.distributed.Dist, as a run does), builds the same seeded
tiny model (model_for_test below, which the parent builds too), evaluates it with the real Evaluator and
scores HellaSwag with the real HellaSwagAtBoundary, both given the rank's Dist as the Trainer gives them.
Each rank writes DUMP/rank{R}.json: the losses it got, the windows it evaluated and the events it emitted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer.data.dataset import open_prepared  # noqa: E402
from trainer.model.gpt import GPT, ModelArgs  # noqa: E402
from trainer.train.distributed import Dist, end_rank_process  # noqa: E402
from trainer.train.evaluator import Evaluator  # noqa: E402
from trainer.train.hellaswag import HellaSwagAtBoundary  # noqa: E402

from tests.tiny_trainer_child import tiny  # noqa: E402

BLOCK, BATCH, EVAL_ITERS = 16, 3, 5  # 15 windows a split: 8 on rank 0, 7 on rank 1 (uneven on purpose)


def model_for_test() -> GPT:
    """The same weights in every process: a seeded tiny GPT with GPT-2's vocabulary (HellaSwag's tokens)."""
    torch.manual_seed(0)
    return GPT(ModelArgs(n_layer=1, n_head=2, n_embd=32, block_size=BLOCK, vocab_size=50304, dropout=0.0))


def evaluator_for_test(data, ranks: Dist | None = None) -> Evaluator:
    return Evaluator(train_path=data.train_path, val_path=data.val_path, block_size=BLOCK, batch_size=BATCH,
                     eval_iters=EVAL_ITERS, device="cpu", ranks=ranks)


def main() -> int:
    prepared, hellaswag_file, dump = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    ranks = Dist.from_env()
    ranks.start("cpu")
    try:
        model = model_for_test()
        evaluator = evaluator_for_test(open_prepared(prepared), ranks)
        losses = evaluator.evaluate(model).losses
        emitted, warnings = [], []
        scorer = HellaSwagAtBoundary(tiny(hellaswag_interval=0, max_iters=10), "cpu", "float32",
                                     lambda event: emitted.append(event.to_dict()), warnings.append,
                                     file=hellaswag_file, ranks=ranks)
        scorer.run(model, 7)
        dump.mkdir(parents=True, exist_ok=True)
        (dump / f"rank{ranks.rank}.json").write_text(json.dumps({
            "losses": losses, "windows": {split: o.tolist() for split, o in evaluator.mine.items()},
            "events": emitted, "warnings": warnings}))
    finally:
        ranks.stop()
    return 0


if __name__ == "__main__":
    end_rank_process(main())  # under torchrun: no interpreter teardown (see its docstring)
