"""How long `fwtui` takes from process start to the setup screen's first frame, in a real pseudo-terminal.

Each trial forks a child on a fresh pty that starts a new Python interpreter, builds the app exactly as
`fwtui` does (FwtuiApp with the Linux driver, the real GPU probe), and writes the wall clock when the
setup screen has drawn its first frame; the parent measured the clock just before the fork. It also
checks that torch, tiktoken and the training modules were not imported by then.

    python bench/first_frame.py [--trials 5]
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import statistics
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
from fwtui.app import FwtuiApp
app = FwtuiApp()
def first_frame():
    heavy = [m for m in ("torch", "tiktoken", "trainer.runs.launch", "trainer.model.gpt") if m in sys.modules]
    with open(sys.argv[1], "w") as f:
        json.dump({"time": time.time(), "heavy": heavy}, f)
    app.exit()
app.first_frame = first_frame
app.run()
"""


def one_trial(out_path: str) -> dict:
    start = time.time()
    pid, fd = pty.fork()
    if pid == 0:  # the child: a fresh interpreter on the pty, as a user's shell would start it
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-c", CHILD, out_path])
    # Drain the pty so the app's writes never block, until the child exits.
    while True:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                os.read(fd, 65536)
            except OSError:
                break
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    os.close(fd)
    with open(out_path) as f:
        result = json.load(f)
    result["seconds"] = result["time"] - start
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.trials):
            result = one_trial(os.path.join(tmp, f"trial{i}.json"))
            times.append(result["seconds"])
            heavy = ", ".join(result["heavy"]) or "none"
            print(f"trial {i + 1}: first frame after {result['seconds'] * 1000:.0f} ms (heavy modules loaded: {heavy})")
    print(f"first frame: median {statistics.median(times) * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms "
          f"over {len(times)} trials (goal: under 1000 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
