"""The terminal goes away mid-run (tmux killed, as an SSH drop would): the run goes on headless to its end.

`fwtui --preset cpu-tiny --data X --out RUN --start` runs in a tmux server of its own (a private socket);
once RUN/events.jsonl has Step lines the server is killed, which hangs up the app's terminal (SIGHUP).
The process must live on, keep appending Steps to the event log and end it with Finished and a checkpoint,
so `fwtui attach RUN` can follow it. The tmux case is skipped where tmux is not installed. A second case
closes a pty that is not the app's controlling terminal: no SIGHUP comes, only EIO and end-of-file.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import synthetic_texts, write_fineweb_parquet
from trainer.observe.runlog import read_events

TMUX = shutil.which("tmux")
WAIT_SECONDS = 120.0
"""Upper bound for each wait (a healthy run needs a few seconds per stage on a busy 2-core machine)."""


def kinds(run_dir: Path) -> list[str]:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line).get("kind", ""))
        except ValueError:
            pass  # a line being written
    return out


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_until(condition, what: str, limit: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


OVERRIDES = ["max_iters=60", "log_interval=1", "eval_iters=2", "eval_interval=1000", "batch_size=2",
             "block_size=64", "val_fraction=0.05"]


def app_command(tmp_path: Path) -> tuple[list[str], dict[str, str], Path]:
    """`fwtui --preset cpu-tiny --data X --out RUN --set ... --start`, its environment, and RUN."""
    data = write_fineweb_parquet(tmp_path / "shard.parquet", synthetic_texts(200), row_group_size=50)
    run_dir = tmp_path / "run"
    env = {
        "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_STATE_HOME": str(tmp_path / "state"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    argv = [sys.executable, "-m", "fwtui.cli", "--preset", "cpu-tiny", "--data", str(data), "--out", str(run_dir),
            *[arg for item in OVERRIDES for arg in ("--set", item)], "--start"]
    return argv, env, run_dir


def drop_terminal_and_follow(run_dir: Path, pid: int, drop) -> None:
    """Wait for Steps, call `drop()` (the terminal goes away), then check the run goes on to Finished."""
    wait_until(lambda: kinds(run_dir).count("step") >= 3 or not alive(pid), "Step events from the app")
    assert alive(pid), f"the app ended early: {kinds(run_dir)}"
    drop()
    steps_at_drop = kinds(run_dir).count("step")
    wait_until(lambda: kinds(run_dir).count("step") > steps_at_drop + 2 or not alive(pid),
               "Steps after the terminal went away")
    assert kinds(run_dir).count("step") > steps_at_drop, "the run stopped when its terminal went away"
    wait_until(lambda: not alive(pid), "the run to end and the process to exit")
    events = read_events(run_dir / "events.jsonl")
    assert events[-1].kind == "finished" and events[-1].reason == "completed"
    assert events[-1].iter == 60
    assert (run_dir / "ckpt.pt").is_file()


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux)")
def test_run_goes_on_headless_when_tmux_is_killed(tmp_path: Path) -> None:
    """SIGHUP: the tmux server dies, the pane's terminal with it."""
    argv, env, run_dir = app_command(tmp_path)
    command = ("cd " + shlex.quote(str(tmp_path)) + " && exec env "
               + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(argv))
    tmux = [TMUX, "-L", f"fwtui-sighup-{os.getpid()}", "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "40", command], check=True)
    pid = None
    try:
        pid = int(subprocess.run([*tmux, "list-panes", "-F", "#{pane_pid}"], check=True, capture_output=True,
                                 text=True).stdout.split()[0])
        drop_terminal_and_follow(run_dir, pid, lambda: subprocess.run([*tmux, "kill-server"], check=False))
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_run_goes_on_when_a_pty_closes_without_sighup(tmp_path: Path) -> None:
    """No SIGHUP: the app's pty is not its controlling terminal (a script's pty), and it is closed.
    Writes then fail with EIO and reads see end-of-file; the app must notice and detach."""
    argv, env, run_dir = app_command(tmp_path)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=tmp_path,
                            env={**os.environ, **env, "TERM": "xterm-256color"})
    os.close(slave)
    draining = threading.Event()
    draining.set()

    def drain() -> None:  # read the app's output, as a terminal would, until the "terminal" closes
        while draining.is_set():
            if select.select([master], [], [], 0.1)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()

    def close_pty() -> None:
        draining.clear()
        reader.join()
        os.close(master)

    try:
        drop_terminal_and_follow(run_dir, proc.pid, close_pty)
        assert proc.wait(timeout=WAIT_SECONDS) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
