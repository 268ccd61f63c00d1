"""Bytes the console writes to the terminal during training, through a real pty at 120x40 (issue 5: thin
SSH links; the goal is 10 KB/s or less on average).

    python bench/terminal_bytes.py [--mode app|attach|synthetic] [--seconds 60] [--rate 20] [--log-interval 1]

  app        `fwtui --preset cpu-tiny --data D --start` in the pty: the app trains cpu-tiny itself.
  attach     `fwtui train` headless in the background, `fwtui attach RUN` in the pty.
  synthetic  `fwtui attach RUN` in the pty while this script appends a step's events to RUN/events.jsonl
             --rate times a second (no engine needed; a fixed, known event rate). `--rate 0.25 --log-interval 50`
             is an RTX 4070 on rtx4070-12gb: a step every 4 s, a log point every 50.

--log-interval (default 1, a Step every iteration: the busiest the dashboard gets) set to, say,
1000 leaves only what moves the views between log points: a Progress a second, a live loss point every 5 s and
the time panel's clocks (issue 20).

The pty is sized with TIOCSWINSZ before the child starts, TERM=xterm-256color. Everything read from the
pty's master side is counted. Prints the total, the average over the whole window, the first 5 s (the first
paint) and the steady rate after it, in bytes per second (1 KB = 1000 bytes).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLUMNS, ROWS = 120, 40
GOAL_BYTES_PER_SEC = 10_000
FIRST_PAINT_SECONDS = 5.0


def make_data(directory: Path) -> Path:
    from tests.conftest import synthetic_texts, write_fineweb_parquet

    return write_fineweb_parquet(directory / "bench.parquet", synthetic_texts(2000), row_group_size=200)


def fwtui(*args: str) -> list[str]:
    return [sys.executable, "-m", "fwtui.cli", *args]


def train_args(data: Path, run: Path, log_interval: int = 1) -> list[str]:
    # Enough iterations to outlast the window (about 3 a second here), yet finite: should this script die,
    # the detached run must not train for days. Logged every iteration (the busiest the dashboard gets).
    return ["--preset", "cpu-tiny", "--data", str(data), "--out", str(run), "--set", "max_iters=3000",
            "--set", f"log_interval={log_interval}", "--set", "eval_interval=200", "--set", "val_fraction=0.05"]


def synthetic_writer(run: Path, rate: float, halt: threading.Event, log_interval: int = 1) -> threading.Thread:
    """Append a RunStarted, then what the Trainer would write for a step every 1/`rate` s: a Step at each log
    point (every `log_interval`), and between them trainer.train.live_figures's Progress and live points (the
    real component, fed the steps' figures); an Eval every 200."""
    import torch

    from trainer.observe.events import Eval, RunStarted
    from trainer.observe.metrics import StepMetrics
    from trainer.observe.runlog import EventLogWriter
    from trainer.train.live_figures import LiveFigures

    writer = EventLogWriter(run)
    writer(RunStarted(run_dir=str(run), config={"name": "cpu-tiny"}, params=104_512, params_with_embeddings=112_704,
                      device="cpu", device_name="CPU: bench", device_memory_bytes=8 << 30, peak_flops=None,
                      peak_flops_source="unknown (bench)", flops_per_token=700_000, tokens_per_iter=1024,
                      dataset_tokens=250_000, start_iter=0, max_iters=1_000_000, precision="float32", compiled=False))
    metrics = StepMetrics(tokens_per_iter=1024, flops_per_token=700_000, peak_flops=None, dataset_tokens=250_000,
                          max_iters=1_000_000, eval_interval=200, always_save_checkpoint=False, memory_bytes=8 << 30)
    live = LiveFigures(metrics, "cpu", lambda it: 1e-3)

    def run_loop() -> None:
        i = 0
        while not halt.wait(1.0 / rate):
            metrics.add_step(1.0 / rate)
            loss = 10.0 / (1 + i / 100)
            if i % log_interval == 0:
                live.logged(i)
                writer(metrics.step_event(i, loss=loss, grad_norm=1.0, lr=1e-3))
            else:
                for event in live.after_step(i, torch.tensor(loss), torch.tensor(1.0), torch.tensor(0.0)):
                    writer(event)
            if i and i % 200 == 0:
                writer(Eval(iter=i, train_loss=5.0, val_loss=5.1, best_val_loss=5.1, seconds=0.5))
            i += 1
        writer.close()

    thread = threading.Thread(target=run_loop, daemon=True)
    thread.start()
    return thread


def measure(command: list[str], seconds: float) -> list[tuple[float, int]]:
    """Run `command` on a fresh 120x40 pty for `seconds`; (time since start, bytes) per read."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS))
    env.pop("TEXTUAL", None)
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                            start_new_session=True)
    os.close(slave)
    reads: list[tuple[float, int]] = []
    tail = b""  # the last output, to show why the console exited early
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the pty (it exited)
                    break
                if not data:
                    break
                reads.append((elapsed, len(data)))
                tail = (tail + data)[-4000:]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:  # keep draining so it can exit
            if select.select([master], [], [], 0.1)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    break
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)
    if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL, 143, 130):
        after = tail.rsplit(b"\x1b[?1049l", 1)[-1]  # what it printed after leaving the full-screen view
        text = re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b.", "", after.decode(errors="replace"))
        last = [line.strip() for line in text.splitlines() if line.strip()][-3:]
        print(f"note: the console exited with status {proc.returncode}: {' | '.join(last)}", file=sys.stderr)
    return reads


def report(reads: list[tuple[float, int]], seconds: float, label: str) -> None:
    total = sum(n for _, n in reads)
    first = sum(n for t, n in reads if t < FIRST_PAINT_SECONDS)
    steady = (total - first) / max(seconds - FIRST_PAINT_SECONDS, 1e-9)
    average = total / seconds
    print(f"mode {label}: {COLUMNS}x{ROWS} pty, TERM=xterm-256color, {seconds:.0f} s")
    print(f"  total             {total:,} bytes")
    print(f"  average           {average:,.0f} B/s  (goal <= {GOAL_BYTES_PER_SEC:,} B/s: "
          f"{'met' if average <= GOAL_BYTES_PER_SEC else 'NOT met'})")
    print(f"  first {FIRST_PAINT_SECONDS:.0f} s         {first:,} bytes (first paint, replay)")
    print(f"  steady after it   {steady:,.0f} B/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("app", "attach", "synthetic"), default="app")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=20.0, help="synthetic mode: Step events a second")
    parser.add_argument("--log-interval", type=int, default=1, help="the run's log_interval (synthetic: of its steps)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fwtui-bytes-") as tmp:
        tmp_path = Path(tmp)
        run = tmp_path / "run"
        background: subprocess.Popen | None = None
        halt = threading.Event()
        try:
            if args.mode == "app":
                command = fwtui(*train_args(make_data(tmp_path), run, args.log_interval), "--start")
            elif args.mode == "attach":
                background = subprocess.Popen(fwtui("train", *train_args(make_data(tmp_path), run, args.log_interval)),
                                              cwd=ROOT,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                deadline = time.monotonic() + 300
                while not (run / "events.jsonl").is_file():
                    if background.poll() is not None or time.monotonic() > deadline:
                        print("fwtui train did not start a run", file=sys.stderr)
                        return 2
                    time.sleep(0.2)
                command = fwtui("attach", str(run))
            else:
                run.mkdir()
                synthetic_writer(run, args.rate, halt, args.log_interval)
                command = fwtui("attach", str(run))
            reads = measure(command, args.seconds)
        finally:
            halt.set()
            if background is not None:
                background.terminate()  # a stop at the next step boundary, with a checkpoint: slow under load
                try:
                    background.wait(timeout=180)
                except subprocess.TimeoutExpired:
                    background.kill()
                    background.wait()
    label = args.mode + (f" ({args.rate:g} steps/s" if args.mode == "synthetic" else " (") + \
        f", log_interval {args.log_interval})"
    report(reads, args.seconds, label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
