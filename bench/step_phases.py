"""Where a training step's time goes: data, forward+backward, optimizer, the log point's read, and with the
modern recipe the Muon groups' share, each timed with a device sync between the phases (bench/train.py
prints them; bench/muon.py splits the optimizer step the same way)."""

from __future__ import annotations

import contextlib
import statistics
import time

import torch

from trainer.train.bad_steps import BadSteps, step_unless_bad
from trainer.train.optimizers import MuonWithAdamW


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@contextlib.contextmanager
def only_groups(optimizer: torch.optim.Optimizer, kind: str):
    """The optimizer with only its groups of `kind` ("muon" or "adamw"): a step of it is that part of the
    real step (same state, same arithmetic), so the two parts can be timed apart."""
    every = optimizer.param_groups
    optimizer.param_groups = [g for g in every if g["kind"] == kind]
    try:
        yield optimizer
    finally:
        optimizer.param_groups = every


def phase_breakdown(trainer, steps: int) -> tuple[dict[str, float], float | None]:
    """Median seconds per step in each phase, with a device sync after each (so they add up on a GPU), and
    the median seconds of the Muon groups' step inside "optimizer" (None: not Muon, or fp16, whose GradScaler
    steps the optimizer once). "log read" is the host's read of the loss, norm and bad-step counters, which
    the loop does once every log_interval steps (no step waits for it otherwise)."""
    device, cfg = trainer.device, trainer.config
    phases: dict[str, list[float]] = {"data": [], "forward+backward": [], "optimizer": [], "log read": []}
    split = isinstance(trainer.optimizer, MuonWithAdamW) and not trainer.scaler.is_enabled()
    muon_s: list[float] = []
    accum = cfg.gradient_accumulation_steps
    for _ in range(steps):
        data_s = fb_s = 0.0
        for _ in range(accum):
            t0 = time.perf_counter()
            x, y = trainer.loader.next()
            sync(device)
            t1 = time.perf_counter()
            with trainer.autocast:
                _, loss = trainer.model(x, y)
            trainer.scaler.scale(loss / accum).backward()
            sync(device)
            t2 = time.perf_counter()
            data_s, fb_s = data_s + t1 - t0, fb_s + t2 - t1
        t0 = time.perf_counter()
        if trainer.scaler.is_enabled():
            trainer.scaler.unscale_(trainer.optimizer)  # as the loop: clip the true gradients
        norm = torch.nn.utils.clip_grad_norm_(trainer.params, cfg.grad_clip)
        if split:  # the loop's BadSteps.step, in two timed halves
            bad = BadSteps.verdict(loss.detach().float(), norm.float())
            sync(device)
            m0 = time.perf_counter()
            with only_groups(trainer.optimizer, "muon") as muon:
                step_unless_bad(muon, bad)
            sync(device)
            muon_s.append(time.perf_counter() - m0)
            with only_groups(trainer.optimizer, "adamw") as adamw:
                step_unless_bad(adamw, bad)
            trainer.nonfinite.record(bad)
        else:
            trainer.nonfinite.step(trainer.optimizer, trainer.scaler, loss.detach().float(), norm.float())  # as the loop
        trainer.optimizer.zero_grad(set_to_none=True)
        sync(device)
        t1 = time.perf_counter()
        trainer.nonfinite.read(loss, norm)  # at a log point only
        t2 = t3 = time.perf_counter()
        phases["data"].append(data_s)
        phases["forward+backward"].append(fb_s)
        phases["optimizer"].append((t1 - t0) + (t3 - t2))
        phases["log read"].append(t2 - t1)
    return ({name: statistics.median(values) for name, values in phases.items()},
            statistics.median(muon_s) if muon_s else None)
