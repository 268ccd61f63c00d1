"""End to end on CPU: parquet -> prepare -> cpu-tiny training -> checkpoint, events, config; the CLI once."""

from __future__ import annotations

import math
import tomllib

import pytest
import torch

from tests.conftest import synthetic_texts, write_fineweb_parquet
from trainer.observe import events as ev
from trainer.train.checkpoint import NANOGPT_KEYS
from trainer.train.controls import Controls
from trainer.errors import ConfigError
from trainer.model.gpt import GPT, ModelArgs
from trainer.runs.launch import RunRequest, run_training
from trainer.observe.runlog import read_events

# cpu-tiny's model (2 layers, 2 heads, 64 wide, the full GPT-2 vocabulary) on shorter, smaller batches so
# the 40 steps fit in the suite's budget on two shared cores; the synthetic corpus has ~35 words.
FAST = ["max_iters=40", "warmup_iters=5", "eval_interval=20", "eval_iters=2", "log_interval=10",
        "batch_size=2", "block_size=32", "val_fraction=0.1", "learning_rate=5e-3"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FWTUI_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def corpus(tmp_path):
    return write_fineweb_parquet(tmp_path / "corpus.parquet", synthetic_texts(200), row_group_size=50)


def test_cpu_tiny_learns_and_leaves_a_complete_run_directory(corpus, tmp_path):
    seen: list[ev.Event] = []
    run_dir = run_training(RunRequest("cpu-tiny", corpus, out=tmp_path / "run", overrides=FAST), seen.append,
                           Controls())
    kinds = [e.kind for e in seen]
    assert kinds[0] == "prepare_done" or "prepare_progress" in kinds[:kinds.index("prepare_done")]
    assert kinds.index("prepare_done") < kinds.index("run_started") < kinds.index("step")
    final_eval = [e for e in seen if isinstance(e, ev.Eval)][-1]
    assert final_eval.iter == 40
    assert final_eval.val_loss < 6.0 < math.log(50257)  # far below chance (10.8 nats)
    assert [e.iter for e in seen if isinstance(e, ev.Step) and e.log_point] == [0, 10, 20, 30, 39]
    assert seen[-1].kind == "finished" and seen[-1].reason == "completed"

    assert oct(run_dir.stat().st_mode & 0o777) == oct(0o700)
    config = tomllib.loads((run_dir / "config.toml").read_text())
    assert config["name"] == "cpu-tiny" and config["max_iters"] == 40 and config["n_layer"] == 2
    logged = read_events(run_dir)
    assert [e.kind for e in logged] == kinds  # events.jsonl holds the same stream

    ckpt = torch.load(run_dir / "ckpt.pt", map_location="cpu", weights_only=True)
    assert set(NANOGPT_KEYS) <= set(ckpt)
    assert ckpt["iter_num"] == 40 and math.isclose(ckpt["best_val_loss"], final_eval.best_val_loss)
    model = GPT(ModelArgs.from_dict(ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])  # nanoGPT key names, no _orig_mod. prefix
    assert ckpt["dataset"]["train_tokens"] > 0 and ckpt["data_position"]["position"] == 40


def test_cli_trains_stops_on_a_signal_resumes_and_refuses_bad_input(corpus, tmp_path, capsys):
    from fwtui.cli import main

    run = tmp_path / "cli-run"
    args = ["train", "--preset", "cpu-tiny", "--data", str(corpus), "--out", str(run),
            "--set", "max_iters=6", "--set", "warmup_iters=2", "--set", "eval_interval=3", "--set", "eval_iters=1", "--set", "log_interval=1",
            "--set", "batch_size=2", "--set", "block_size=32", "--set", "val_fraction=0.1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "iter 0/6: loss" in out and "MFU unknown" in out and "ETA" in out
    assert "checkpoint 6 (final)" in out and "completed at iter 6" in out
    assert main(args) == 2  # the run directory already holds a run
    assert "already holds a run" in capsys.readouterr().err

    # --resume with more iterations continues from the checkpoint, on the run's own data and config.
    assert main(["train", "--out", str(run), "--resume", "--set", "max_iters=9"]) == 0
    out = capsys.readouterr().out
    assert "resuming at iter 6" in out and "iter 6/9: loss" in out and "completed at iter 9" in out
    started = [e for e in read_events(run) if isinstance(e, ev.RunStarted)]
    assert [e.start_iter for e in started] == [0, 6]

    assert main(["train", "--preset", "no-such-preset", "--data", str(corpus)]) == 2
    assert capsys.readouterr().err.startswith("fwtui: error: unknown preset 'no-such-preset'")


def test_a_stop_request_ends_with_a_checkpoint(corpus, tmp_path):
    controls = Controls()

    def sink(event):
        if isinstance(event, ev.Step) and event.iter == 2:
            controls.stop("test")

    run_dir = run_training(RunRequest("cpu-tiny", corpus, out=tmp_path / "r", overrides=FAST[1:] + [
        "max_iters=20", "log_interval=1", "block_size=32"]), sink, controls)
    events = read_events(run_dir)
    assert events[-1].kind == "finished" and events[-1].reason == "stopped" and events[-1].iter == 3
    assert [(e.iter, e.reason) for e in events if isinstance(e, ev.CheckpointSaved)] == [(3, "stop")]


def test_resume_without_a_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        run_training(RunRequest("cpu-tiny", None, out=tmp_path / "empty", resume=True), lambda e: None)


def test_ctrl_c_twice_stops_headless_with_a_loadable_checkpoint(corpus, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    run = tmp_path / "sig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fwtui.cli", "train", "--preset", "cpu-tiny", "--data", str(corpus), "--out", str(run),
         *[x for item in FAST[1:] + ["max_iters=10000", "log_interval=1"] for x in ("--set", item)]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    for line in proc.stdout:
        if line.startswith("iter 1/"):
            break
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)  # a second Ctrl-C while it stops and saves changes nothing
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped at iter" in out and "--resume" in out
    ckpt = torch.load(run / "ckpt.pt", weights_only=True)
    assert ckpt["fwtui"]["reason"] == "stop" and ckpt["iter_num"] >= 2


def test_cli_smoke_run_of_20_iterations_runs_and_resumes_for_5_more(corpus, tmp_path, capsys):
    """`fwtui train --preset cpu-tiny --set max_iters=20` (warmup_iters 20 = the run) was refused; nanoGPT runs
    it. So is a resume for a few more iterations. Both run, with one warning line each saying what the
    schedule does; the resume keeps lr_decay_iters 20, so its steps run at min_lr (cpu-tiny's 2e-4)."""
    from fwtui.cli import main

    run = tmp_path / "smoke"
    narrow = [x for item in ["max_iters=20", "eval_interval=10", "eval_iters=1", "log_interval=5", "batch_size=2",
                             "block_size=32", "val_fraction=0.1"] for x in ("--set", item)]
    assert main(["train", "--preset", "cpu-tiny", "--data", str(corpus), "--out", str(run), *narrow]) == 0
    out = capsys.readouterr().out
    assert "warning: warmup_iters = 20 is as long as the run (max_iters 20)" in out and "completed at iter 20" in out
    assert main(["train", "--out", str(run), "--resume", "--set", "max_iters=25", "--set", "log_interval=1"]) == 0
    out = capsys.readouterr().out
    assert "warning: lr_decay_iters = 20 is not after warmup_iters = 20" in out
    assert ("warning: max_iters 20 -> 25; the schedule is kept: lr_decay_iters 20, from there the rate stays at "
            "min_lr 2.00e-04") in out
    assert "resuming at iter 20" in out and "completed at iter 25" in out
    resumed = [e for e in read_events(run) if isinstance(e, ev.Step) and e.iter >= 20]
    assert [e.iter for e in resumed] == [20, 21, 22, 23, 24] and {e.lr for e in resumed} == {2e-4}
