"""How long training pauses for a sample in the real app: `fwtui --demo --start` in a pseudo-terminal.

    python bench/sample_in_app.py [--samples 3] [--warmup 25]

Starts the app as a user would (cpu-tiny on the demo corpus, 120x40 terminal, a fresh HOME and XDG
directories in a temporary folder), waits `--warmup` seconds for training to run, then presses `s`, Enter
(an empty prompt, the dashboard's 200 tokens) `--samples` times, Esc after each, and reads each Sample
event's `seconds` from RUN/events.jsonl: the time the trainer thread spent writing, during which training
waited. Then `q`, `y`. The app runs in its own process with its UI, its Textual driver threads and the
trainer thread, as in use, which `bench/sample.py` (the sampling alone) does not show.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

COLUMNS, ROWS = 120, 40


def drain(fd: int, seconds: float) -> bool:
    """Read (and drop) what the app draws for `seconds`; False once the app has gone."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                if not os.read(fd, 65536):
                    return False
            except OSError:
                return False
    return True


def samples(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    events = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [e for e in events if e.get("kind") == "sample"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=25.0, help="seconds of training before the first `s`")
    args = parser.parse_args()
    fwtui = shutil.which("fwtui") or str(Path(sys.executable).with_name("fwtui"))
    work = Path(tempfile.mkdtemp(prefix="fwtui-sample-bench-"))
    run_dir = work / "run"
    env = dict(os.environ, HOME=str(work), XDG_STATE_HOME=str(work / "state"),
               XDG_CACHE_HOME=str(work / "cache"), XDG_CONFIG_HOME=str(work / "config"), TERM="xterm-256color")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the app, as typed in a shell; evaluations out of the way of the samples
        os.chdir(work)
        os.execve(fwtui, [fwtui, "--demo", "--start", "--out", str(run_dir), "--set", "max_iters=100000",
                          "--set", "eval_interval=100000"], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    seconds = []
    try:
        drain(fd, args.warmup)
        for k in range(args.samples):
            os.write(fd, b"s")
            drain(fd, 1.0)
            os.write(fd, b"\r")
            deadline = time.monotonic() + 300
            while len(samples(run_dir)) <= k and time.monotonic() < deadline:
                if not drain(fd, 0.5):
                    break
            got = samples(run_dir)
            if len(got) <= k:
                print(f"sample {k + 1}: none arrived (see {run_dir}/events.jsonl)")
                return 1
            seconds.append(got[k]["seconds"])
            print(f"sample {k + 1}: iteration {got[k]['iter']}, training paused {got[k]['seconds']:.2f} s",
                  flush=True)
            os.write(fd, b"\x1b")
            drain(fd, 3.0)
        os.write(fd, b"q")
        drain(fd, 1.0)
        os.write(fd, b"y")
        drain(fd, 15.0)
    finally:
        try:
            os.kill(pid, signal.SIGTERM)  # only if q, y did not end it
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    print(f"median pause for a 200-token sample in the app: {statistics.median(seconds):.2f} s "
          f"over {len(seconds)} samples (cpu-tiny, demo corpus, {COLUMNS}x{ROWS})")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
