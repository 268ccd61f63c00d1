"""One intra-op thread for boundary work on a CPU: sampling, HellaSwag scoring, the checkpoint copy.

Each of these runs many small ops (a decode step is ~60; a checkpoint copy ~450 tensors). On a busy CPU
(training's worker, the UI, other processes) torch's OpenMP team waits at every op for a worker that was
descheduled, so two threads are far slower than one there: on the 2-core VM 100 sampled tokens took 12.6 s on
two threads and 0.44 s on one (bench/sample.py), the gpt2-124m checkpoint copy 1.4-2.6 s against 0.38 s
(bench/checkpoint.py). On a GPU the work is on the device and the thread count is left alone.
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def one_cpu_thread(device: str | torch.device = "cpu"):
    """torch's intra-op threads set to 1 while the block runs on a CPU `device`, and set back after."""
    if torch.device(device).type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
