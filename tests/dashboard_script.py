"""A fixed, scripted event stream for the dashboard tests and snapshots: no torch, no clock, no randomness.

The run looks like DESIGN.md's sketch: an RTX 4070 preset 1,240 iterations into 6,000, with evals every 250
iterations, a checkpoint and a sample at 1,000. Every `time` is fixed so finish times render the same always.
"""

from __future__ import annotations

import math

from trainer.observe.events import (CheckpointSaved, Eval, Failed, Finished, PrepareDone, PrepareProgress, RunStarted,
                            Sample, StateChanged, Step, Warning)

T0 = 1_700_000_000.0
"""2023-11-14 22:13:20 UTC: the scripted run's start."""
STEP_SECONDS = 9.34
MAX_ITERS = 6000
SAMPLE_TEXT = "The history of the city is told in its streets, its markets and the names of its old families."


def run_started(*, peak_flops: float | None = 58.3e12, device: str = "cuda:0", start_iter: int = 0,
                max_iters: int = MAX_ITERS) -> RunStarted:
    gpu = device.startswith("cuda")
    return RunStarted(
        time=T0, run_dir="runs/fineweb-000", config={"name": "rtx4070-12gb", "max_iters": max_iters},
        params=63_520_000, params_with_embeddings=64_310_000, device=device,
        device_name="NVIDIA GeForce RTX 4070" if gpu else "AMD EPYC 7B13",
        device_memory_bytes=12_000_000_000 if gpu else 16_000_000_000,
        peak_flops=peak_flops,
        peak_flops_source="table: bf16 dense" if peak_flops else "peak unknown: no table entry for this device; "
                                                                  "pass --peak-tflops",
        flops_per_token=390_000_000, tokens_per_iter=524_288, dataset_tokens=700_000_000,
        start_iter=start_iter, max_iters=max_iters, precision="bfloat16" if gpu else "float32", compiled=gpu)


def step(i: int, *, mfu: float | None = 0.412, cpu: bool = False) -> Step:
    loss = 3.3 + 7.5 * math.exp(-i / 180) + 0.05 * math.sin(i / 7)
    return Step(
        time=T0 + i * STEP_SECONDS, iter=i, loss=loss, lr=6e-4, step_seconds=STEP_SECONDS,
        tokens_per_sec=56_100.0, mfu=None if mfu is None else mfu + 0.01 * math.sin(i / 40),
        mem_allocated_bytes=None if cpu else 9_800_000_000,
        mem_reserved_bytes=1_200_000_000 if cpu else 10_200_000_000,
        mem_peak_bytes=1_300_000_000 if cpu else 10_100_000_000,
        mem_total_bytes=16_000_000_000 if cpu else 12_000_000_000,
        tokens_seen=i * 524_288, epoch=i * 524_288 / 700_000_000, elapsed_seconds=i * STEP_SECONDS,
        eta_seconds=(MAX_ITERS - i) * STEP_SECONDS + 220.0, grad_norm=1.02)


def eval_at(i: int) -> Eval:
    val = 3.35 + 7.5 * math.exp(-i / 180)
    return Eval(time=T0 + i * STEP_SECONDS + 1, iter=i, train_loss=val - 0.04, val_loss=val, best_val_loss=val,
                seconds=20.0)


def prepare_events() -> list:
    return [PrepareProgress(time=T0 - 60, documents=120_000, bytes_done=400_000_000, bytes_total=1_000_000_000,
                            tokens=280_000_000, tokens_per_sec=4_700_000.0, eta_seconds=90.0,
                            source="fineweb/000_00000.parquet")]


def scripted_run(last_iter: int = 1240, *, peak_flops: float | None = 58.3e12) -> list:
    """PrepareDone, RunStarted, Steps every 10 iterations up to `last_iter`, evals, a checkpoint, a sample."""
    events: list = [*prepare_events(),
                    PrepareDone(time=T0 - 1, data_dir="cache/abc", train_tokens=700_000_000, val_tokens=350_000,
                                documents=290_000, seconds=151.0, cached=False),
                    run_started(peak_flops=peak_flops)]
    for i in range(0, last_iter + 1, 10):
        events.append(step(i, mfu=0.412 if peak_flops else None))
        if i and i % 250 == 0:
            events.append(eval_at(i))
        if i == 1000:
            events.append(CheckpointSaved(time=T0 + i * STEP_SECONDS + 22, iter=i, path="runs/fineweb-000/ckpt.pt",
                                          bytes=762_000_000, seconds=1.2, reason="eval"))
            events.append(Sample(time=T0 + i * STEP_SECONDS + 25, iter=i, prompt="\n", text=SAMPLE_TEXT,
                                 seconds=0.8))
        if i == 600:
            events.append(Warning(time=T0 + i * STEP_SECONDS, message="loss spike at iter 600 (4.9 after 4.1)"))
    return events


__all__ = ["T0", "MAX_ITERS", "SAMPLE_TEXT", "run_started", "step", "eval_at", "prepare_events", "scripted_run",
           "StateChanged", "Finished", "Failed", "Sample", "CheckpointSaved"]
