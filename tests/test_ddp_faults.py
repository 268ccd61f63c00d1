"""SIGTERM to torchrun with 2 gloo CPU ranks of a tiny model: every rank stops at the same step boundary,
rank 0 writes the checkpoint there, every process exits; launched by `fwtui train --nproc-cpu 2` the user
sees one line and status 0 (not torchrun's SignalException traceback), and `--resume` continues from the
checkpoint. A rank that fails is one line naming it, too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fwtui.commands import train as train_command
from tests.test_ddp import ROOT, data, events, finish, last_of, same_params, torchrun, wait_for  # noqa: F401
from tests.tiny_trainer_child import tiny
from trainer.config import config_to_toml


def fwtui_train(*args: str, log: Path) -> subprocess.Popen:
    """`python -m fwtui train ... --nproc-cpu 2` with stdout and stderr in LOG.out / LOG.err."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", train_command.RANK_STATUS_ENV):
        env.pop(name, None)
    with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "fwtui", "train", *args, "--nproc-cpu", "2"], cwd=ROOT,
                                env=env, stdout=out, stderr=err, text=True)
    proc.log_path = f"{log}.out"
    return proc


def processes_naming(path: Path) -> list[int]:
    """Pids of the processes whose command line names PATH (a rank left behind would be one)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(path) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_sigterm_to_torchrun_stops_both_ranks_at_one_boundary_with_rank_0s_checkpoint(data, tmp_path):
    """torchrun started directly (as a user types it): it passes SIGTERM to both ranks, which agree on the
    boundary through the boundary's collective; what torchrun itself prints after is its own business."""
    run, dump = tmp_path / "run", tmp_path / "dump"
    proc = torchrun(data, run, dump, "--max-iters", "100000", "--accum", "2", "--eval-interval", "1000")
    wait_for(lambda: (last_of(run, "step") or {}).get("iter", -1) >= 2, "a few steps", proc)
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    finished = last_of(run, "finished")
    assert finished["reason"] == "stopped"
    rank0, rank1 = (torch.load(dump / f"rank{r}.pt") for r in (0, 1))
    saved = torch.load(run / "ckpt.pt")
    assert rank0["iter"] == rank1["iter"] == finished["iter"] == saved["iter_num"] >= 3
    assert same_params(rank0["params"], rank1["params"]) and same_params(rank0["params"], saved["model"])
    assert saved["data_position"]["rank_positions"] == [saved["iter_num"]] * 2  # 1 micro-step a rank a step
    assert not processes_naming(run)


def test_sigterm_to_fwtui_train_nproc_cpu_2_is_one_line_status_0_and_resume_continues(data, tmp_path):
    preset = tmp_path / "tiny.toml"
    preset.write_text(config_to_toml(tiny(max_iters=100000, lr_decay_iters=100000, eval_interval=1000,
                                          gradient_accumulation_steps=2, dropout=0.0, vocab_size=50304,
                                          block_size=16, batch_size=2)))
    run = tmp_path / "run"
    proc = fwtui_train("--preset", str(preset), "--data", str(data), "--out", str(run), log=tmp_path / "first")
    wait_for(lambda: (last_of(run, "step") or {}).get("iter", -1) >= 2, "a few steps", proc)
    proc.send_signal(signal.SIGTERM)  # the process the user started: torchrun, in it
    code, out = finish(proc)
    err = (tmp_path / "first.err").read_text()
    assert code == 0, out + err
    stopped = last_of(run, "finished")["iter"]
    assert stopped == torch.load(run / "ckpt.pt")["iter_num"] >= 3
    said = [line for line in out.splitlines() if "torchrun passed it" in line]
    assert said == [f"SIGTERM: torchrun passed it to the 2 processes; they stopped at iter {stopped:,} with a "
                    "checkpoint and all exited 0"]
    assert out.count("SIGTERM: stopping at the next step with a checkpoint") == 1  # rank 0 alone speaks
    for noise in ("Traceback", "SignalException", "death signal", "closing signal"):
        assert noise not in out + err, out + err
    assert not processes_naming(run)

    proc = fwtui_train("--out", str(run), "--resume", "--set", f"max_iters={stopped + 3}", log=tmp_path / "again")
    code, out = finish(proc)
    assert code == 0, out + (tmp_path / "again.err").read_text()
    after = [e for e in events(run) if e["kind"] in ("run_started", "step", "finished")]
    resumed = next(i for i, e in enumerate(after) if e["kind"] == "run_started" and e["start_iter"] == stopped)
    steps = [e["iter"] for e in after[resumed:] if e["kind"] == "step"]
    assert steps == [stopped, stopped + 1, stopped + 2]
    assert after[-1]["kind"] == "finished" and after[-1]["reason"] == "completed"
    assert after[-1]["iter"] == torch.load(run / "ckpt.pt")["iter_num"] == stopped + 3


def test_a_rank_that_fails_is_one_line_naming_it(tmp_path):
    proc = fwtui_train("--preset", "cpu-tiny", "--set", "gradient_accumulation_steps=2", "--data",
                       str(tmp_path / "missing"), "--out", str(tmp_path / "run"), log=tmp_path / "fails")
    code, _ = finish(proc)
    err = (tmp_path / "fails.err").read_text()
    assert code == 2, err
    assert "does not exist" in err and "Traceback" not in err and "ChildFailedError" not in err
    (line,) = [line for line in err.splitlines() if "torchrun ended the other processes" in line]
    assert line.startswith("fwtui: rank ") and "exited with status 2 (its error is above)" in line


@pytest.mark.parametrize("statuses, code, words", [
    ({0: {"exit": 0, "reason": "stopped", "iter": 1234}, 1: {"exit": 0}}, 0, "they stopped at iter 1,234"),
    ({0: {"exit": 0, "reason": "stopped", "iter": 8}}, 1, "rank(s) 1 of 2 did not stop within torchrun's"),
    ({0: {"exit": 2}, 1: {"exit": 0}}, 2, "rank(s) 0 of 2 ended with an error"),
])
def test_the_line_after_a_signal_says_what_each_rank_did(statuses, code, words):
    got_code, line = train_command._after_signal("SIGTERM", 2, statuses)
    assert got_code == code and words in line and "\n" not in line
