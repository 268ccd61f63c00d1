"""Several processes on CPU: torchrun, gloo, 2 ranks of a tiny model (`fwtui train --nproc-cpu 2` and
tests/ddp_child.py), against one process.

What holds: the ranks' parameters are bit-identical after a run; 2 ranks x accumulation 1 give the
losses of 1 process x accumulation 2 (1e-5), also across a stop and a resume on 2 ranks; only rank 0
writes the run directory; a stop through control/ ends both ranks at the same boundary; kill -9 of one
rank ends the run and its last complete checkpoint resumes, here in one process (another world size: a
warning, positions re-derived).
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
import torch

from tests.conftest import write_pattern_dataset
from tests.tiny_trainer_child import tiny
from trainer.config import config_to_toml
from trainer.observe import events as ev
from trainer.runs.control_channel import ControlClient
from trainer.runs.launch import RunRequest, run_training
from trainer.train.controls import Controls
from trainer.train.distributed import Dist

ROOT = Path(__file__).resolve().parents[1]
CHILD = ROOT / "tests" / "ddp_child.py"
WAIT = 120.0  # seconds before a test gives up on a child (a hang is a failure, not a measurement)


def config(max_iters: int, accum: int):
    """The child's config (tests/ddp_child.py builds the same one)."""
    return tiny(max_iters=max_iters, lr_decay_iters=max_iters, eval_interval=4, gradient_accumulation_steps=accum,
                dropout=0.0, vocab_size=50304, block_size=16, batch_size=2)


def torchrun(data: Path, run: Path, dump: Path, *args: str) -> subprocess.Popen:
    """torchrun with 2 gloo ranks of tests/ddp_child.py; its output goes to DUMP.log (a pipe left unread
    would fill and block the ranks)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    log = open(f"{dump}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(CHILD), str(data), str(run), str(dump), *args],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log_path = log.name
    log.close()
    return proc


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    proc.wait(timeout=WAIT)
    return proc.returncode, Path(proc.log_path).read_text()[-3000:]


def events(run: Path) -> list[dict]:
    lines = (run / "events.jsonl").read_text().splitlines()[1:]  # after the schema line
    return [json.loads(line) for line in lines if line.strip()]


def wait_for(predicate, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {finish(proc)[1]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def last_of(run: Path, kind: str) -> dict | None:
    found = [e for e in events(run) if e["kind"] == kind] if (run / "events.jsonl").exists() else []
    return found[-1] if found else None


def same_params(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("ddp-data")
    write_pattern_dataset(directory)
    return directory


def test_fwtui_train_nproc_cpu_2_equals_one_process_with_twice_the_accumulation(data, tmp_path):
    """`fwtui train --nproc-cpu 2` (torchrun, 2 gloo ranks, accumulation 1 each) against one process with
    accumulation 2. That the ranks stay bit-identical is checked by the next test (it reads both ranks)."""
    preset = tmp_path / "tiny.toml"
    preset.write_text(config_to_toml(config(6, 2)))
    run2 = tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "fwtui", "train", "--preset", str(preset), "--data", str(data),
                           "--out", str(run2), "--nproc-cpu", "2"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=WAIT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "world: 2 processes (DDP)" in done.stdout and done.stdout.count("iter 5/6") == 1  # rank 0 speaks
    run1 = tmp_path / "one"
    run_training(RunRequest(preset=config(6, 2), data=data, out=run1), lambda e: None)

    loss1 = [(e["iter"], e["loss"]) for e in events(run1) if e["kind"] == "step"]
    loss2 = [(e["iter"], e["loss"]) for e in events(run2) if e["kind"] == "step"]
    assert [i for i, _ in loss2] == list(range(6))  # each step logged once: one writer
    assert [i for i, _ in loss1] == [i for i, _ in loss2]
    assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(loss1, loss2)), (loss1, loss2)
    evals1 = [e["val_loss"] for e in events(run1) if e["kind"] == "eval"]
    evals2 = [e["val_loss"] for e in events(run2) if e["kind"] == "eval"]
    assert len(evals2) == len(evals1) and all(abs(a - b) < 1e-5 for a, b in zip(evals1, evals2))

    one, two = torch.load(run1 / "ckpt.pt"), torch.load(run2 / "ckpt.pt")
    assert all(torch.allclose(one["model"][k], two["model"][k], atol=1e-5, rtol=0) for k in one["model"])
    # 6 steps x 1 micro-step on each rank; the checkpoint holds both ranks' positions
    assert two["data_position"]["world_size"] == 2 and two["data_position"]["rank_positions"] == [6, 6]
    assert two["config"]["gradient_accumulation_steps"] == 2  # the preset's: tokens per iteration unchanged

    started = [e for e in events(run2) if e["kind"] == "run_started"]
    assert len(started) == 1 and started[0]["world_size"] == 2 and len(started[0]["device_names"]) == 2
    assert started[0]["config"]["device"] == "cpu"
    # Only rank 0 writes: the run directory holds rank 0's files, nothing per rank.
    assert sorted(p.name for p in run2.iterdir()) == sorted(p.name for p in run1.iterdir())


def test_stop_through_control_then_kill_one_rank_then_resume_in_one_process(data, tmp_path):
    run, dump = tmp_path / "run", tmp_path / "dump"
    proc = torchrun(data, run, dump, "--max-iters", "100000", "--accum", "2")
    wait_for(lambda: (last_of(run, "step") or {}).get("iter", -1) >= 2, "a few steps", proc)
    ControlClient(run).stop("test: stop through control/")
    code, out = finish(proc)
    assert code == 0, out
    finished = last_of(run, "finished")
    assert finished["reason"] == "stopped"
    rank0, rank1 = (torch.load(dump / f"rank{r}.pt") for r in (0, 1))
    assert rank0["iter"] == rank1["iter"] == finished["iter"] == torch.load(run / "ckpt.pt")["iter_num"]
    assert same_params(rank0["params"], rank1["params"])
    stopped_at = finished["iter"]

    # Resume on 2 ranks; after a checkpoint past the stop, kill -9 rank 1: torchrun ends rank 0 too.
    dump2 = tmp_path / "dump2"
    proc = torchrun(data, run, dump2, "--max-iters", "100000", "--accum", "2", "--resume")
    wait_for(lambda: (last_of(run, "checkpoint") or {}).get("iter", 0) > stopped_at, "a checkpoint after resume",
             proc)
    wait_for(lambda: (dump2 / "rank1.pid").exists(), "rank 1's pid", proc)
    os.kill(int((dump2 / "rank1.pid").read_text()), signal.SIGKILL)
    code, out = finish(proc)
    assert code != 0, out
    saved = torch.load(run / "ckpt.pt")  # complete (torch.load reads it whole), or this raises
    last_ckpt = last_of(run, "checkpoint")["iter"]
    assert saved["iter_num"] >= last_ckpt > stopped_at

    # Stop, resume, kill: every step the 2 ranks logged is the step one process takes with accumulation 2
    # (the resume continued at the right data positions), to 1e-5.
    logged = {e["iter"]: e["loss"] for e in events(run) if e["kind"] == "step"}
    assert set(logged) == set(range(max(logged) + 1)) and max(logged) >= last_ckpt > stopped_at
    controls = Controls()
    reference: dict[int, float] = {}

    def record(event: ev.Event) -> None:
        if isinstance(event, ev.Step):
            reference[event.iter] = event.loss
            if event.iter >= max(logged):
                controls.stop("test: as far as the 2 ranks went")

    run_training(RunRequest(preset=config(100000, 2), data=data, out=tmp_path / "reference"), record, controls)
    assert all(abs(reference[i] - loss) < 1e-5 for i, loss in logged.items()), (logged, reference)

    # The last complete checkpoint continues in one process: a warning, positions re-derived.
    got: list[ev.Event] = []
    run_training(RunRequest(preset=None, data=None, out=run, resume=True,
                            overrides=[f"max_iters={saved['iter_num'] + 2}"]), got.append)
    warnings = [e.message for e in got if isinstance(e, ev.Warning)]
    assert any("saved with 2 process(es) on 1" in w for w in warnings), warnings
    done = [e for e in got if isinstance(e, ev.Finished)]
    assert done and done[-1].reason == "completed" and done[-1].iter == saved["iter_num"] + 2
    # 2 ranks x their position global batches were read; then 2 iterations x accumulation 2 in one process.
    assert torch.load(run / "ckpt.pt")["data_position"]["position"] == 2 * saved["data_position"]["position"] + 4


def test_accumulation_that_does_not_divide_is_one_line():
    ranks = Dist(world_size=2)
    with pytest.raises(Exception) as err:
        ranks.split_accumulation(3)
    assert "does not divide over 2 processes" in str(err.value) and "\n" not in str(err.value)
    assert ranks.split_accumulation(4) == 2 and Dist().split_accumulation(3) == 3


def test_train_gpus_and_nproc_cpu_refuse_a_wrong_count_in_one_line(capsys):
    from fwtui.cli import main

    if not torch.cuda.is_available():
        assert main(["train", "--preset", "cpu-tiny", "--data", "x", "--gpus", "2"]) == 2
        err = capsys.readouterr().err.strip()
        assert "no CUDA GPU is visible" in err and "--nproc-cpu" in err and "\n" not in err
    assert main(["train", "--preset", "cpu-tiny", "--data", "x", "--nproc-cpu", "3",
                 "--set", "gradient_accumulation_steps=4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "3 processes do not divide gradient_accumulation_steps 4" in err and "\n" not in err


def test_plan_for_several_gpus_is_memory_per_gpu_and_time_for_all():
    from trainer.config import load_preset
    from trainer.plan.planner import ASSUMED_SCALING, across_gpus, make_plan

    config = load_preset("gpt2-124m")
    one = make_plan(config, device_name="NVIDIA H100 80GB HBM3", device_memory_bytes=80 * 2**30,
                    runs_dir=Path("/nonexistent"))
    eight = across_gpus(one, config, 8)
    assert eight.gpus == 8 and eight.est_memory_bytes == one.est_memory_bytes + 4 * one.params_with_embeddings
    assert eight.train_seconds == pytest.approx(one.train_seconds / (8 * ASSUMED_SCALING))
    assert eight.eval_seconds == pytest.approx(one.eval_seconds / 8)  # each rank evaluates 1/8 of the windows
    assert eight.est_seconds == pytest.approx(eight.train_seconds + one.eval_seconds / 8
                                              + (one.hellaswag_seconds or 0) / 8 + one.checkpoint_seconds)
    assert any("assumed scaling efficiency" in note for note in eight.notes)
    assert any("do not divide" in w for w in across_gpus(one, config, 7).warnings)
    assert across_gpus(one, config, 1) is one


def test_a_rank_that_cannot_join_is_one_line_naming_it(monkeypatch):
    import socket

    from trainer.train.distributed import RankStartError

    with socket.socket() as busy:  # the rendezvous port taken by another program
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
        monkeypatch.setenv("MASTER_PORT", str(busy.getsockname()[1]))
        with pytest.raises(RankStartError) as err:
            Dist(rank=0, local_rank=0, world_size=2).start("cpu")
    message = str(err.value)
    assert message.startswith("rank 0 of 2 could not join the process group") and "\n" not in message
    assert "address already in use" in message
