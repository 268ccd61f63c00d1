"""The evaluation and HellaSwag split over 2 gloo CPU ranks (torchrun, tests/ddp_eval_child.py), against
one process on the same data and weights.

What holds: rank r evaluates windows r, r+2, ... of each split (disjoint, together every window) and the
summed losses are one process's over all windows (1e-5); HellaSwag's examples are split the same way and
the counts added up are one process's, example for example, with rank 0 alone emitting the event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_pattern_dataset
from tests.ddp_eval_child import evaluator_for_test, model_for_test
from tests.test_hellaswag import made_line
from trainer.data import hellaswag as data
from trainer.data.tokenizer import get_encoding
from trainer.train.hellaswag import score

ROOT = Path(__file__).resolve().parents[1]
CHILD = ROOT / "tests" / "ddp_eval_child.py"
WAIT = 120.0  # seconds before the test gives up on torchrun (a hang is a failure, not a measurement)
EXAMPLES = 9  # odd: rank 0 scores 5, rank 1 scores 4


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run the child once on 2 ranks; (prepared data, HellaSwag file, rank 0's dump, rank 1's dump)."""
    root = tmp_path_factory.mktemp("ddp-eval")
    prepared = write_pattern_dataset(root)
    hellaswag_file = root / "hellaswag.jsonl"
    hellaswag_file.write_text("".join(json.dumps(made_line(i)) + "\n" for i in range(EXAMPLES)), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    dump = root / "dump"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(CHILD), str(root), str(hellaswag_file), str(dump)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ranks = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    return prepared, hellaswag_file, ranks


def test_each_rank_evaluates_its_share_and_the_sum_is_one_process_over_all_windows(two_ranks):
    prepared, _, (rank0, rank1) = two_ranks
    one = evaluator_for_test(prepared)  # one process: every window
    for split, offsets in one.offsets.items():
        mine0, mine1 = rank0["windows"][split], rank1["windows"][split]
        assert (len(mine0), len(mine1)) == (8, 7)  # 15 windows: r, r+2, r+4, ...
        assert not set(mine0) & set(mine1) and sorted(mine0 + mine1) == sorted(offsets.tolist())
        assert mine0 == offsets.tolist()[0::2] and mine1 == offsets.tolist()[1::2]
    alone = one.evaluate(model_for_test()).losses
    for split in ("train", "val"):
        assert rank0["losses"][split] == rank1["losses"][split]  # the all_reduce gave both ranks the same sums
        assert abs(rank0["losses"][split] - alone[split]) < 1e-5, (rank0["losses"], alone)


def test_hellaswag_split_over_ranks_counts_what_one_process_counts(two_ranks):
    _, hellaswag_file, (rank0, rank1) = two_ranks
    examples = data.load(hellaswag_file).examples
    alone = score(model_for_test(), examples, get_encoding())
    assert alone.count == EXAMPLES
    assert rank1["events"] == [] and rank0["warnings"] == rank1["warnings"] == []  # rank 0 alone speaks
    (event,) = rank0["events"]
    assert event["kind"] == "hellaswag" and event["iter"] == 7 and event["count"] == EXAMPLES
    # The same fractions of the same count: the same correct counts, example for example.
    assert round(event["acc"] * EXAMPLES) == alone.correct and round(event["acc_norm"] * EXAMPLES) == alone.correct_norm
    assert event["acc"] == alone.acc and event["acc_norm"] == alone.acc_norm and event["seconds"] > 0


class OtherRankFailed:
    """Rank 0 of 2, whose peer adds failed = 1 to the HellaSwag collective (its file was unreadable)."""

    rank, world_size, is_main = 0, 2, True

    def sum(self, counts):
        import torch

        return counts + torch.tensor([0, 0, 0, 0, 1, 0], dtype=counts.dtype)


def test_a_hellaswag_failure_on_another_rank_stops_the_periodic_scoring_on_this_one_too(two_ranks):
    """Every rank must agree on `due` (a rank that scored alone would wait forever in the collective)."""
    from tests.tiny_trainer_child import tiny
    from trainer.train.hellaswag import HellaSwagAtBoundary

    _, hellaswag_file, _ = two_ranks
    emitted, warnings = [], []
    scorer = HellaSwagAtBoundary(tiny(hellaswag_interval=5, max_iters=10), "cpu", "float32", emitted.append,
                                 warnings.append, file=str(hellaswag_file), ranks=OtherRankFailed())
    assert scorer.due(5)
    scorer.run(model_for_test(), 5)
    assert emitted == [] and not scorer.due(10)
    assert warnings == ["HellaSwag not scored, and not again every 5 iterations: it failed on 1 of 2 processes"]


def test_a_stop_asked_during_a_scoring_ends_it_at_the_next_example_without_an_event(two_ranks):
    """So a SIGTERM's checkpoint is not held up by the rest of the file (torchrun kills after its grace)."""
    from tests.tiny_trainer_child import tiny
    from trainer.train.hellaswag import HellaSwagAtBoundary

    _, hellaswag_file, _ = two_ranks
    emitted, warnings, asked = [], [], []
    scorer = HellaSwagAtBoundary(tiny(hellaswag_interval=5, max_iters=10), "cpu", "float32", emitted.append,
                                 warnings.append, file=str(hellaswag_file), stopping=lambda: len(asked) >= 1)
    scorer.run(model_for_test(), 5)  # no stop: scored
    asked.append("SIGTERM")
    scorer.run(model_for_test(), 10)
    assert [e.iter for e in emitted] == [5] and scorer.due(15)  # the periodic scoring is left as it was
    assert warnings == [f"HellaSwag at iter 10 not counted: a stop was asked after 1 of this process's {EXAMPLES} "
                        "examples"]
