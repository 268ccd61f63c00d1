"""A stop within a supervisor's grace (issue 23, point 3): systemd, docker and Kubernetes send SIGKILL 10 to
90 s after SIGTERM, so SIGTERM and Ctrl-C must be acted on at the next small unit of long work, not after
it: an evaluation window batch, a prepared row group, a sampled token. Every child is a real `fwtui train`
process; a hook makes each unit slow (TICK seconds) and writes a line per unit, so the test counts units
instead of timing anything: without the cut, the work would run its hundreds of units to the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import synthetic_texts, write_fineweb_parquet
from tests.test_faults_signals import WAIT, Child
from trainer.data.ingest import prepare
from trainer.observe import events as ev
from trainer.observe.runlog import read_events
from trainer.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TICK = 0.5
"""Seconds each hooked unit takes (longer while the test holds it: see Hooked.stop_twice)."""
SETS = ["max_iters=100000", "warmup_iters=2", "log_interval=1", "batch_size=2", "block_size=32", "n_layer=1",
        "n_embd=16", "eval_interval=100000"]

HOOKED = """
import os, sys, time
marker, unit, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
hold, held = marker + ".hold", marker + ".held"
def tick():
    with open(marker, "a") as f:
        f.write("unit\\n")
    time.sleep(seconds)
    if os.path.exists(hold):  # the test sends its signals while this unit is surely under way
        open(held, "w").close()
        while os.path.exists(hold):
            time.sleep(0.01)
if unit == "eval":
    from trainer.train import evaluator
    real_batches = evaluator.Evaluator.batches
    def batches(self, split):
        for item in real_batches(self, split):
            tick()
            yield item
    evaluator.Evaluator.batches = batches
elif unit == "prepare":
    from trainer.data import ingest
    real_encode = ingest._encode
    def encode(*args, **kwargs):
        tick()  # one batch a row group here
        return real_encode(*args, **kwargs)
    ingest._encode = encode
elif unit == "sample":
    from trainer.model import gpt
    real_decode = gpt.GPT.decode
    def decode(self, *args, **kwargs):
        tick()
        return real_decode(self, *args, **kwargs)
    gpt.GPT.decode = decode
from fwtui.cli import main
sys.exit(main(sys.argv[4:]))
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("stop-data")
    parquet = write_fineweb_parquet(base / "corpus.parquet", synthetic_texts(200), row_group_size=50)
    return prepare([parquet], base / "prepared", val_fraction=0.1).dir


class Hooked(Child):
    """A `fwtui train` child (tests/test_faults_signals.py's Child) whose `unit` is slowed by HOOKED."""

    def __init__(self, tmp_path: Path, unit: str, data: Path, sets: list[str]):
        self.run, self.marker = tmp_path / "run", tmp_path / f"{unit}.units"
        self.out_path, self.err_path = tmp_path / "out.txt", tmp_path / "err.txt"
        self.args = ["train", "--preset", "cpu-tiny", "--data", str(data), "--out", str(self.run)]
        for item in sets:
            self.args += ["--set", item]
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
                    "FWTUI_CACHE_DIR": str(tmp_path / "cache")}
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", HOOKED, str(self.marker), unit, str(TICK), *self.args],
                                         cwd=ROOT, env=self.env, stdout=out, stderr=err)

    def units(self) -> int:
        return len(self.marker.read_text().splitlines()) if self.marker.exists() else 0

    def stop_twice(self) -> int:
        """Two SIGTERMs inside one unit, the second once the first was heard; the units begun by then.

        The unit under way is held until both were heard: under load two signals sent close together reach
        the process as one (the kernel keeps one pending SIGTERM, and Python runs a tripped handler once),
        and a unit of fixed length may end before the second arrives."""
        hold, held = Path(f"{self.marker}.hold"), Path(f"{self.marker}.held")
        hold.touch()
        try:
            self.wait_for(held.exists, "a held unit")
            at_signal = self.units()
            self.proc.send_signal(signal.SIGTERM)
            self.wait_for(lambda: self.printed("SIGTERM: stopping"), "the first SIGTERM heard")
            self.proc.send_signal(signal.SIGTERM)
            self.wait_for(lambda: self.printed("SIGTERM: already stopping"), "the second heard")
        finally:
            hold.unlink()
        return at_signal


def test_sigterm_during_a_long_evaluation_stops_at_its_next_batch_with_a_checkpoint(prepared, tmp_path):
    # eval 0 over 200 windows a split: 200 batches of TICK seconds each (100 s) without the cut
    child = Hooked(tmp_path, "eval", prepared, SETS + ["eval_iters=100"])
    child.wait_for(lambda: child.units() >= 2, "the evaluation")
    at_signal = child.stop_twice()
    rc, out, err = child.finish()
    assert rc == 0 and err == "", err
    assert "SIGTERM: stopping; the evaluation under way stops at its next batch, then the checkpoint is written" in out
    assert "SIGTERM: already stopping; the evaluation under way stops at its next batch" in out
    assert child.units() <= at_signal + 1  # cut at the next batch, not after the other ~190
    events = child.events()
    assert not [e for e in events if isinstance(e, ev.Eval)]  # a cut evaluation reports no loss
    assert [(e.iter, e.reason) for e in events if isinstance(e, ev.CheckpointSaved)] == [(0, "stop")]
    assert isinstance(events[-1], ev.Finished) and events[-1].reason == "stopped"
    assert load_checkpoint(child.run)["iter_num"] == 0


def test_sigterm_during_the_prepare_of_train_data_stops_at_a_row_group_and_the_same_command_continues(tmp_path):
    parquet = write_fineweb_parquet(tmp_path / "corpus.parquet", synthetic_texts(240), row_group_size=4)  # 60 groups
    child = Hooked(tmp_path, "prepare", parquet, SETS + ["eval_iters=1", "max_iters=2", "lr_decay_iters=2",
                                                        "warmup_iters=1"])
    child.wait_for(lambda: child.units() >= 3, "the prepare")
    child.stop_twice()
    rc, out, err = child.finish()
    assert rc == 0 and err == "", err
    assert "SIGTERM: stopping; the prepare stops at its next row group and keeps what is done" in out
    assert "SIGTERM: already stopping; the prepare stops at its next row group" in out
    assert "stopped while preparing the data: " in out and " row group(s) of 60 done and kept in " in out
    assert "stopped before its first checkpoint: the same command continues" in out
    assert child.units() < 30  # of 60 row groups
    assert not (child.run / "ckpt.pt").exists()  # no training, no checkpoint
    events = child.events()
    assert isinstance(events[-1], ev.Finished) and events[-1].reason == "stopped"
    # The same command again (no hook) continues the prepare and trains.
    again = subprocess.run([sys.executable, "-m", "fwtui.cli", *child.args], cwd=ROOT, env=child.env,
                           capture_output=True, text=True, timeout=WAIT)
    assert again.returncode == 0, again.stderr
    done = [e for e in read_events(child.run) if isinstance(e, ev.PrepareDone)][-1]
    assert json.loads((Path(done.data_dir) / "meta.json").read_text())["resumed"] is True
    assert load_checkpoint(child.run)["iter_num"] == 2


def test_sigterm_during_a_long_sample_from_control_cuts_it_at_its_next_token(prepared, tmp_path):
    from trainer.runs.control_channel import ControlClient

    child = Hooked(tmp_path, "sample", prepared, SETS + ["eval_iters=1"])
    child.wait_for(lambda: any(isinstance(e, ev.Step) and e.iter >= 2 for e in child.events()), "step 2")
    client = ControlClient(child.run)
    client.request_sample("The", max_new_tokens=5000)  # 5000 tokens of TICK seconds: 40 minutes uncut
    assert client.last_error == ""
    child.wait_for(lambda: child.units() >= 3, "the sample")
    at_signal = child.stop_twice()
    rc, out, err = child.finish()
    assert rc == 0 and err == "", err
    assert "SIGTERM: already stopping; the sample under way stops at its next token, then the checkpoint is " \
           "written" in out
    assert child.units() <= at_signal + 1
    events = child.events()
    assert any(isinstance(e, ev.Warning) and "was cut short: the run is stopping" in e.message for e in events)
    (sample,) = [e for e in events if isinstance(e, ev.Sample)]
    saved = [e for e in events if isinstance(e, ev.CheckpointSaved)]
    assert saved[-1].reason == "stop" and saved[-1].iter == sample.iter
    assert isinstance(events[-1], ev.Finished) and events[-1].reason == "stopped"
