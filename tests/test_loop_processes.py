"""The Trainer in a child process (tests/tiny_trainer_child.py): a resume in a new process is bitwise equal
to a straight run, and a kill -9 at random moments always leaves a complete checkpoint to resume from."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer.observe import events as ev
from trainer.train.checkpoint import load_checkpoint
from trainer.train.leftovers import recover_temps

from tests.engine_helpers import train
from tests.tiny_trainer_child import tiny

CHILD = Path(__file__).with_name("tiny_trainer_child.py")


@pytest.fixture(scope="module")
def data(pattern_data):
    """The tiny model's data: tests/conftest.py write_pattern_dataset."""
    return pattern_data


def child(data, run, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CHILD), str(data.dir), str(run), *extra],
                            stdout=subprocess.PIPE, text=True)


def losses_of(lines: list[str]) -> dict[int, float]:
    return {int(p[1]): float.fromhex(p[2]) for p in (line.split() for line in lines) if p[0] == "step"}


def test_resume_in_a_new_process_is_bitwise_equal(data, tmp_path):
    first = child(data, tmp_path / "split", "--max-iters", "30", "--stop-at", "15")
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0 and "checkpoint 15" in out
    resumed, _, _ = train(data, tmp_path / "split", tiny(max_iters=30, lr_decay_iters=30, dropout=0.1), resume=True)
    straight, _, _ = train(data, tmp_path / "straight", tiny(max_iters=30, lr_decay_iters=30, dropout=0.1))
    assert {s.iter: s.loss for s in resumed.of(ev.Step)} == {s.iter: s.loss for s in straight.of(ev.Step)
                                                             if s.iter >= 15}


def test_kill_9_at_random_moments_always_resumes_from_the_last_complete_checkpoint(data, tmp_path):
    run = tmp_path / "run"
    rng = random.Random(7)
    last = -1
    for attempt in range(3):
        proc = child(data, run, "--max-iters", "400", "--eval-interval", "1", *(["--resume"] if attempt else []))
        first_step = None
        for line in proc.stdout:  # wait for its first checkpoint, then kill it at a random moment
            if line.startswith("step") and first_step is None:
                first_step = int(line.split()[1])
            if line.startswith("checkpoint"):
                break
        time.sleep(rng.uniform(0.05, 0.6))
        proc.kill()
        proc.wait()
        proc.stdout.close()
        if attempt:
            assert first_step == last  # the resumed process started at the checkpoint's iteration
        recover_temps(run)
        ckpt = load_checkpoint(run)  # complete, loadable with weights_only=True
        assert ckpt["iter_num"] >= max(last, 1)
        last = ckpt["iter_num"]
