"""`fwtui runs`: run directories read from events.jsonl + config.toml, liveness from the run lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fwtui.cli import main
from trainer.config import config_to_toml, load_preset
from trainer.observe.events import Eval, Failed, Finished, RunStarted, Step
from trainer.observe.runlog import EventLogWriter
from trainer.runs.listing import RunInUseError, RunLock, is_running, lock_holder, read_run, scan_runs

T0 = 1_700_000_000.0


def started(run_dir: Path, start_iter: int = 0, t: float = T0) -> RunStarted:
    return RunStarted(time=t, run_dir=str(run_dir), config={"name": "cpu-tiny"}, params=100_000,
                      params_with_embeddings=108_192, device="cpu", device_name="CPU: test", device_memory_bytes=None,
                      peak_flops=None, peak_flops_source="unknown", flops_per_token=600_000, tokens_per_iter=1024,
                      dataset_tokens=20_000, start_iter=start_iter, max_iters=200, precision="float32",
                      compiled=False)


def step(i: int, loss: float) -> Step:
    return Step(time=T0 + i, iter=i, loss=loss, lr=1e-3, step_seconds=0.1, tokens_per_sec=10_240.0, mfu=None,
                mem_allocated_bytes=None, mem_reserved_bytes=None, mem_peak_bytes=None, mem_total_bytes=None,
                tokens_seen=(i + 1) * 1024, epoch=(i + 1) * 1024 / 20_000, elapsed_seconds=float(i), eta_seconds=None)


def make_run(root: Path, name: str, *tail, iters: int = 3, preset: str | None = "cpu-tiny",
             t: float = T0) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    if preset:
        (run_dir / "config.toml").write_text(config_to_toml(load_preset("cpu-tiny").replace(name=preset)))
    writer = EventLogWriter(run_dir)
    writer(started(run_dir, t=t))
    for i in range(iters):
        writer(step(i, 5.0 - i))
    writer(Eval(iter=iters - 1, train_loss=3.25, val_loss=3.5, best_val_loss=3.5, seconds=0.2))
    for event in tail:
        writer(event)
    writer.close()
    return run_dir


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path / "events.jsonl", (then, then))


def test_statuses(tmp_path: Path) -> None:
    done = make_run(tmp_path, "done", Finished(iter=2, reason="completed", seconds=3.0), t=T0 + 50)
    stopped = make_run(tmp_path, "stopped", Finished(iter=2, reason="stopped", seconds=3.0), t=T0 + 40)
    failed = make_run(tmp_path, "failed", Failed(message="CUDA out of memory at batch 64", iter=2), t=T0 + 30)
    live = make_run(tmp_path, "live", t=T0 + 20)
    killed = make_run(tmp_path, "killed", t=T0 + 10)
    RunLock(killed).acquire().release()  # it held the lock once; its process is gone now
    age(killed, 3600)
    with RunLock(live):
        assert is_running(live) is True and lock_holder(live) == os.getpid()
        runs = {r.name: r for r in scan_runs(tmp_path)}
    assert is_running(live) is False  # released with the descriptor, however the process ends
    assert [r.name for r in scan_runs(tmp_path)] == ["done", "stopped", "failed", "live", "killed"]  # newest first
    assert {n: r.status for n, r in runs.items()} == {
        "done": "finished", "stopped": "stopped", "failed": "failed", "live": "running", "killed": "stopped"}
    assert "CUDA out of memory" in runs["failed"].problem
    assert "without an end event" in runs["killed"].problem
    r = runs["done"]
    assert (r.preset, r.iteration, r.max_iters, r.train_loss, r.val_loss, r.tokens_seen, r.start_time) == (
        "cpu-tiny", 2, 200, 3.0, 3.5, 3 * 1024, T0 + 50)
    assert r.path == done and stopped.is_dir() and failed.is_dir()


def test_resumed_run_is_judged_by_its_last_start(tmp_path: Path) -> None:
    run = make_run(tmp_path, "resumed", Finished(iter=2, reason="stopped", seconds=3.0))
    writer = EventLogWriter(run)
    writer(started(run, start_iter=3, t=T0 + 100))
    writer(step(3, 1.5))
    writer.close()
    info = read_run(run)
    assert info.iteration == 3 and info.train_loss == 1.5 and info.start_time == T0  # first start shown
    assert info.status == "running"  # no lock file: a log written just now counts as live
    age(run, 3600)
    assert read_run(run).status == "stopped"


def test_live_lock_from_another_process(tmp_path: Path) -> None:
    run = tmp_path / "other"
    code = ("import sys, time; from trainer.runs.listing import RunLock\n"
            f"lock = RunLock({str(run)!r}).acquire(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert is_running(run) is True and lock_holder(run) == proc.pid
        with pytest.raises(RunInUseError, match=f"process {proc.pid} is running there"):
            RunLock(run).acquire()
    finally:
        proc.kill()
        proc.wait()
    assert is_running(run) is False  # SIGKILL drops the flock: no stale "running"
    with RunLock(run):  # and the directory can be used again
        pass


def test_broken_runs_are_one_line_each(tmp_path: Path) -> None:
    make_run(tmp_path, "good", Finished(iter=2, reason="completed", seconds=3.0))
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "events.jsonl").write_bytes(b"\x00\xffnot json at all\n")
    (tmp_path / "no-events").mkdir()
    (tmp_path / "no-events" / "config.toml").write_text('name = "cpu-tiny"\n')
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "events.jsonl").write_text('{"schema": "fwtui.events", "version": 99}\n')
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "config.toml").write_text("this is = = not toml")
    writer = EventLogWriter(tmp_path / "torn")
    writer(started(tmp_path / "torn"))
    writer(step(0, 4.0))
    writer.close()
    with open(tmp_path / "torn" / "events.jsonl", "a") as f:
        f.write('{"kind": "step", "iter": 1, "lo')  # killed mid-line
    (tmp_path / "not-a-run").mkdir()
    runs = {r.name: r for r in scan_runs(tmp_path)}
    assert "not-a-run" not in runs
    assert runs["garbage"].status == "unreadable" and "fwtui header" in runs["garbage"].problem
    assert runs["no-events"].status == "unreadable" and "no events.jsonl" in runs["no-events"].problem
    assert runs["future"].status == "unreadable" and "upgrade fwtui" in runs["future"].problem
    torn = runs["torn"]
    assert torn.iteration == 0 and torn.preset == "cpu-tiny"  # from RunStarted when config.toml is broken


def test_runs_cli_table(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # every column (narrower: tests/test_first_hour_cli.py)
    make_run(tmp_path, "fineweb-a", Finished(iter=2, reason="completed", seconds=3.0), preset="rtx4070-12gb")
    make_run(tmp_path, "fineweb-b", Failed(message="disk full", iter=2))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "events.jsonl").write_text("")
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in ("name", "preset", "status", "iteration", "train loss", "val loss", "tokens seen", "started",
                 "path", "fineweb-a", "rtx4070-12gb", "finished", "2 / 200", "3.0000", "3.5000", "3.07k",
                 "fineweb-b", "failed", "fineweb-b: failed: disk full", str(tmp_path / "fineweb-a")):
        assert text in out, text
    assert "broken: unreadable: events.jsonl is empty" in out
    rows = [line for line in out.splitlines() if "fineweb-" in line and "│" in line]
    assert rows[0].index("fineweb-a") < rows[0].index("rtx4070-12gb")  # one row per run, columns in order


def test_runs_cli_errors(tmp_path: Path, capsys) -> None:
    assert main(["runs", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fwtui: error:") and "no such directory" in err and err.count("\n") == 1
    assert main(["runs", str(tmp_path)]) == 0
    assert "no runs in" in capsys.readouterr().out
    single = make_run(tmp_path, "single")
    assert main(["runs", str(single)]) == 0  # a run directory itself lists that run
    assert "single" in capsys.readouterr().out


def test_runs_and_view_summary_show_run_health(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    def write_run(name: str, losses: list[float], evals: list[tuple[float, float]]) -> Path:
        run_dir = tmp_path / name
        run_dir.mkdir()
        writer = EventLogWriter(run_dir)
        writer(started(run_dir))
        for i, loss in enumerate(losses):
            writer(step(i, loss))
        for k, (train, val) in enumerate(evals):
            writer(Eval(iter=len(losses) - 1 + k, train_loss=train, val_loss=val, best_val_loss=val, seconds=0.2))
        writer.close()
        return run_dir

    healthy = write_run("healthy", [5.0 - 0.1 * i for i in range(12)], [(3.90, 3.95)])
    spiky = write_run("spiky", [4.0] * 12 + [9.0], [(3.30, 3.62), (3.30, 3.61), (3.30, 3.62)])
    write_run("fresh", [], [])  # started, no step yet: nothing to judge

    runs = {r.name: r for r in scan_runs(tmp_path)}
    assert runs["healthy"].health == () and runs["fresh"].health is None
    assert [f.kind for f in runs["spiky"].health] == ["gap", "plateau", "spike"]

    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "health" in out.splitlines()[2]  # the column header
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert "│ ok " in rows["healthy"] and "│ - " in rows["fresh"]
    assert "│ 3: train/val gap: val 3.62 vs train 3.30" in rows["spiky"]  # the count and the first finding
    assert "spiky: health: train/val gap: val 3.62 vs train 3.30 at iter 14 (+0.32 nats, above 0.1)" in out
    assert "spiky: health: val loss plateau: 3.62, 3.61, 3.62 over the last 3 evals" in out
    assert "spiky: health: 1 loss spike: largest 9.00 at iter 12 against a median of 4.00" in out
    assert "healthy: health" not in out

    assert main(["view", str(spiky), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "health              3 findings:\n  - train/val gap: val 3.62 vs train 3.30 at iter 14" in out
    assert "\n  - 1 loss spike: largest 9.00 at iter 12 against a median of 4.00 over the previous 20 logs" in out
    assert main(["view", str(healthy), "--summary"]) == 0
    assert "health              ok (no NaN" in capsys.readouterr().out


def test_a_progress_past_the_last_step_is_the_iteration_shown(tmp_path: Path) -> None:
    """Between log points (issue 20) the log's newest iteration is a Progress's: `fwtui runs` shows it."""
    from trainer.observe.events import Progress

    run = make_run(tmp_path, "live", Progress(iter=40, elapsed_seconds=80.0, eta_seconds=10.0), iters=3)
    info = read_run(run)
    assert info.iteration == 40 and info.train_loss == 3.0  # the loss stays the last Step's
