"""A stop within a supervisor's grace with several ranks (issue 23, point 3): SIGTERM to `fwtui train
--nproc-cpu 2` during a long evaluation. torchrun passes it to both ranks; each cuts its share of the windows
at its next batch and both still meet in the evaluation's one all_reduce, which tells every rank that a rank
cut, so they stop at the same boundary and rank 0 writes the stop's checkpoint.

The rank processes are started by torchrun, not by the test, so the slowing hook reaches them through a
sitecustomize module on PYTHONPATH: each evaluation batch takes TICK seconds and writes a line naming its rank,
and the test counts lines instead of timing anything (uncut, each rank would run 100 batches a split).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import synthetic_texts, write_fineweb_parquet
from tests.test_ddp_faults import processes_naming
from trainer.data.ingest import prepare
from trainer.observe import events as ev
from trainer.observe.runlog import read_events
from trainer.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TICK = 0.5
WAIT = 180.0

SLOW_EVALUATION = '''
import os
if os.environ.get("FWTUI_TEST_SLOW_EVAL_MARKER"):
    import time
    from trainer.train import evaluator

    real_batches = evaluator.Evaluator.batches

    def batches(self, split):
        for item in real_batches(self, split):
            with open(os.environ["FWTUI_TEST_SLOW_EVAL_MARKER"], "a") as marker:
                marker.write(f"rank{os.environ.get('RANK', '-')}\\n")
            time.sleep(float(os.environ["FWTUI_TEST_SLOW_EVAL_SECONDS"]))
            yield item

    evaluator.Evaluator.batches = batches
'''


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("ddp-stop-data")
    parquet = write_fineweb_parquet(base / "corpus.parquet", synthetic_texts(200), row_group_size=50)
    return prepare([parquet], base / "prepared", val_fraction=0.1).dir


def batches_by_rank(marker: Path) -> dict[str, int]:
    lines = marker.read_text().splitlines() if marker.exists() else []
    return {rank: lines.count(rank) for rank in ("rank0", "rank1")}


def test_sigterm_during_a_long_evaluation_on_two_ranks_stops_both_at_their_next_batch(prepared, tmp_path):
    hook, run, marker = tmp_path / "hook", tmp_path / "run", tmp_path / "eval.batches"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_EVALUATION)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}",
           "FWTUI_TEST_SLOW_EVAL_MARKER": str(marker), "FWTUI_TEST_SLOW_EVAL_SECONDS": str(TICK)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    args = ["train", "--preset", "cpu-tiny", "--data", str(prepared), "--out", str(run), "--nproc-cpu", "2"]
    for item in ("max_iters=100000", "warmup_iters=2", "batch_size=2", "block_size=32", "n_layer=1", "n_embd=16",
                 "gradient_accumulation_steps=2", "eval_interval=100000", "eval_iters=100"):
        args += ["--set", item]
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "fwtui.cli", *args], cwd=ROOT, env=env, stdout=out,
                                stderr=err)
    try:
        deadline = time.monotonic() + WAIT
        while min(batches_by_rank(marker).values()) < 2:  # both ranks inside evaluation 0
            assert proc.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, "gave up waiting for the evaluation"
            time.sleep(0.05)
        at_signal = batches_by_rank(marker)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = out_path.read_text(), err_path.read_text()
    assert code == 0, out + err
    assert ("SIGTERM: torchrun passed it to the 2 processes; they stopped at iter 0 with a checkpoint and all "
            "exited 0") in out
    after = batches_by_rank(marker)
    for rank in after:  # the batch under way when the signal came, and at most one more
        assert after[rank] <= at_signal[rank] + 2, (at_signal, after)
    events = read_events(run)
    assert not [e for e in events if isinstance(e, ev.Eval)]  # a cut evaluation reports no loss
    assert [(e.iter, e.reason) for e in events if isinstance(e, ev.CheckpointSaved)] == [(0, "stop")]
    assert isinstance(events[-1], ev.Finished) and events[-1].reason == "stopped"
    assert load_checkpoint(run)["iter_num"] == 0
    assert not processes_naming(run)
