"""`fwtui attach` and `fwtui view`: the dashboard from an event log, replayed or followed live, and keys that
reach a trainer in another process through the control channel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fwtui.cli import main
from fwtui.commands.attach import build_attach_app
from fwtui.run_logs import load
from fwtui.viewer import ViewerApp
from tests.test_nanogpt_log import HEADER, LOOP, mangle
from tests.test_runs import make_run
from trainer.runs.control_channel import control_dir
from trainer.observe.events import CheckpointSaved, Finished, Step
from trainer.observe.runlog import read_events

REPO = Path(__file__).resolve().parents[1]
SIZE = (120, 40)


async def test_replay_of_a_finished_run(tmp_path: Path) -> None:
    run = make_run(tmp_path, "done", Finished(iter=4, reason="completed", seconds=5.0, final_val_loss=3.5), iters=5)
    app = build_attach_app(run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        board = app.dashboard
        assert app.screen is board and board.query_one("#header").region.height == 1  # dashboard.tcss applied
        assert board.iteration == 4 and board.finished_reason == "completed" and board.loss_points == 5
        await pilot.press("c")  # the run is over: nothing is sent
        await pilot.pause()
        assert not control_dir(run).exists() or os.listdir(control_dir(run)) == []
        await pilot.press("q")  # a finished run: q leaves at once
        await pilot.pause()
    assert app.return_code == 0


async def test_view_opens_a_nanogpt_log_read_only(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(mangle(HEADER + LOOP).encode())
    events, summary, title = load(str(path), "RTX 4070")
    batches = [events]
    app = ViewerApp(lambda: batches.pop() if batches else [], title=title)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        board = app.dashboard
        assert board.iteration == 7 and board.loss_points == 8 and board.finished_reason == "completed"
        assert board.run.peak_flops == pytest.approx(58.3e12)  # MFU shown against the card, not the A100
        assert board.last_step.mfu == pytest.approx(0.154 * 312 / 58.3)
        await pilot.press("p")  # read-only: says so, nothing breaks
        await pilot.pause()
        assert board.controls is None


def test_attach_without_a_log_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["attach", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fwtui: error:") and "no events.jsonl" in err and err.count("\n") == 1
    assert main(["attach", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err


async def test_attach_to_a_live_headless_run(tmp_path: Path) -> None:
    from tests.conftest import synthetic_texts, write_fineweb_parquet

    data = write_fineweb_parquet(tmp_path / "docs.parquet", synthetic_texts(120), row_group_size=40)
    run = tmp_path / "live"
    # Long enough to still be running while we attach, press c and watch; stopped from here at the end.
    proc = subprocess.Popen(
        [sys.executable, "-m", "fwtui.cli", "train", "--preset", "cpu-tiny", "--data", str(data), "--out", str(run),
         "--set", "max_iters=100000", "--set", "log_interval=1", "--set", "eval_interval=100000",
         "--set", "n_layer=1", "--set", "n_embd=32", "--set", "n_head=2", "--set", "block_size=32",
         "--set", "batch_size=2"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while not any(isinstance(e, Step) for e in _events(run)):
            assert proc.poll() is None, f"fwtui train ended early: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no Step within 120 s"
            time.sleep(0.2)
        app = build_attach_app(run)
        seen: list = []  # every event the viewer was fed
        source = app._poll_source
        app._poll_source = lambda: seen.extend(batch := source()) or batch
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            board = app.dashboard
            first = board.iteration
            assert first is not None and board.run is not None and not board.run_over
            assert await _until(pilot, lambda: board.iteration > first), "the iteration did not advance"
            await pilot.press("c")  # through RUN/control/ to the trainer in the other process
            assert await _until(pilot, lambda: any(
                isinstance(e, CheckpointSaved) and e.reason == "requested" for e in seen)), \
                "no requested checkpoint reached the viewer"
            await pilot.press("q")  # attach: q asks to detach; the run goes on
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
        assert app.return_code == 0
        assert proc.poll() is None  # detaching never stops the run
        # Stop it the way a second viewer would: the channel again.
        from trainer.runs.control_channel import ControlClient

        ControlClient(run).stop("test over")
        proc.wait(timeout=120)
        assert any(isinstance(e, Finished) and e.reason == "stopped" for e in _events(run))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _events(run: Path) -> list:
    try:
        return read_events(run)
    except FileNotFoundError:
        return []


async def _until(pilot, predicate, timeout: float = 90.0) -> bool:
    """Let the app poll the log until `predicate` holds (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await pilot.pause(0.1)
    return predicate()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_puts_the_attach_view_on_localhost(tmp_path: Path) -> None:
    pytest.importorskip("textual_serve")
    import urllib.request

    from fwtui.commands.serve import attach_command

    run = make_run(tmp_path, "served", Finished(iter=2, reason="completed", seconds=3.0))
    assert attach_command(run).endswith(f"-m fwtui.cli attach {run.resolve()}")  # a viewer, never `train`
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fwtui.cli", "serve", str(run), "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert "serving" in line
        link = line.split(" at ", 1)[1].split()[0]  # the secret link (tests/test_serve_owner_only.py)
        deadline, page = time.monotonic() + 30, ""
        while time.monotonic() < deadline and not page:
            try:
                page = urllib.request.urlopen(link, timeout=5).read().decode()
            except OSError:
                time.sleep(0.2)
        assert f"127.0.0.1:{port}" in page  # the page's websocket and static URLs point at loopback
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_without_textual_serve_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)  # as if not installed
    run = make_run(tmp_path, "r")
    assert main(["serve", str(run)]) == 2
    err = capsys.readouterr().err
    assert "pip install textual-serve" in err and err.count("\n") == 1


def test_view_summary_of_our_own_events(tmp_path: Path, capsys) -> None:
    from trainer.observe.events import CheckpointSaved as Saved

    run = make_run(tmp_path, "ours", Saved(iter=2, path="ckpt.pt", bytes=10, seconds=0.5, reason="eval"),
                   Finished(iter=4, reason="completed", seconds=5.0, final_train_loss=3.25, final_val_loss=3.5),
                   iters=5)
    assert main(["view", str(run), "--summary"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fwtui events:")
    assert "iterations          5 (0 to 4, every iteration logged)" in out
    assert "0.7 s lost (measured)" in out  # the eval's 0.2 s + the checkpoint's 0.5 s
    assert "final val loss      3.5000" in out
    assert "average MFU         unknown" in out  # the run's peak was unknown: no figure invented
