"""Non-finite steps, found and skipped on the device; counted there; told to the host at log points.

A step whose loss or gradient norm is NaN or inf must not update the weights. Asking the host ("is it
finite?") each step is a device sync that stalls the queue of kernels; instead the verdict stays a device
tensor `found_inf` (1.0 bad, 0.0 good), the protocol torch's GradScaler uses with optimizers that set
`_step_supports_amp_scaling` (the fused AdamW, CPU and CUDA, torch >= 2.4): the fused kernel reads it and
leaves weights, moments and the step count untouched when it is 1. Three device counters follow each step
(float32 scalars, exact below 2**24): bad steps in a row now, the longest run since the last read, and the
steps skipped since training started in this process. The loop reads them with the loss at log points and
at boundaries that save, where a sync is due anyway.
"""

from __future__ import annotations

import torch

from trainer.errors import FwtuiError

MAX_BAD_STEPS = 5  # non-finite steps in a row before the run stops (its last good checkpoint kept on disk)


class TrainingDiverged(FwtuiError):
    """Loss or gradient norm stayed NaN/inf for MAX_BAD_STEPS steps: the run stopped, and RUN/ckpt.pt is the
    last good checkpoint (none is written while the latest steps are bad), which --resume continues from."""


def step_unless_bad(optimizer: torch.optim.Optimizer, bad: torch.Tensor) -> None:
    """optimizer.step(), skipped on the device when `bad` (a float 0-dim tensor) is 1. An optimizer without
    the found-inf protocol (the fused AdamW and MuonWithAdamW have it) needs the host to decide: one sync."""
    if getattr(optimizer, "_step_supports_amp_scaling", False):
        optimizer.found_inf, optimizer.grad_scale = bad, None  # as GradScaler.step sets them
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf, optimizer.grad_scale
    elif not bad.item():
        optimizer.step()


class BadSteps:
    def __init__(self, device: str | torch.device) -> None:
        zero = torch.zeros((), dtype=torch.float32, device=device)
        self.in_a_row, self.longest, self.skipped = zero.clone(), zero.clone(), zero.clone()
        self.reported = 0  # skipped steps already warned about (host int)

    @staticmethod
    def verdict(loss: torch.Tensor, norm: torch.Tensor, norm_counts: bool = True) -> torch.Tensor:
        """1.0 when the step is bad, else 0.0 (device, no sync). fp16 passes norm_counts=False: an inf
        gradient there is the GradScaler's business (it skips and lowers the scale), not a fault."""
        ok = torch.isfinite(loss) & torch.isfinite(norm) if norm_counts else torch.isfinite(loss)
        return (~ok).float()

    def step(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor,
             norm: torch.Tensor) -> None:
        """The optimizer step of a step whose loss and gradient norm (0-dim, on the device) are given:
        skipped on the device when either is non-finite, and counted. fp16: the GradScaler finds inf
        gradients and skips itself (with the fused AdamW, without a sync); only a NaN loss counts as bad."""
        bad = self.verdict(loss, norm, norm_counts=not scaler.is_enabled())
        if scaler.is_enabled():
            scaler.step(optimizer)
            scaler.update()
        else:
            step_unless_bad(optimizer, bad)
        self.record(bad)

    def record(self, bad: torch.Tensor) -> None:
        self.in_a_row.add_(1).mul_(bad)  # run + 1 when bad, 0 when good
        torch.maximum(self.longest, self.in_a_row, out=self.longest)
        self.skipped.add_(bad)

    def read(self, *extra: torch.Tensor) -> list[float]:
        """[*extra, in a row, longest since the last read, skipped]: one host sync. The longest run
        starts again from the current one."""
        values = torch.stack([*(t.detach().float() for t in extra), self.in_a_row, self.longest,
                              self.skipped]).tolist()
        self.longest.copy_(self.in_a_row)
        return values

    def warning(self, first_iter: int, it: int, loss: float, norm: float, in_a_row: int,
                skipped: int) -> str | None:
        """The Warning for steps skipped in iterations first_iter..it (one log window), or None."""
        new, self.reported = skipped - self.reported, skipped
        if new <= 0:
            return None
        if new == 1 and in_a_row >= 1:  # the window's last step was the bad one: its figures are known
            return (f"iter {it}: loss {loss} / gradient norm {norm} is not finite; step skipped "
                    f"({in_a_row} of {MAX_BAD_STEPS} in a row)")
        steps = f"{new} step{'s' if new > 1 else ''}"
        return (f"iters {first_iter} to {it}: {steps} skipped (loss or gradient norm not finite); "
                f"{in_a_row} of {MAX_BAD_STEPS} in a row at iter {it}")

    @staticmethod
    def streak(first: int | None, last: int, in_a_row: int, longest: int) -> str | None:
        """The iterations of a run of MAX_BAD_STEPS or more bad steps among first..last (the steps since
        the last read; first None: not known), or None when there was none."""
        if in_a_row >= MAX_BAD_STEPS:
            return f"iters {last - in_a_row + 1} to {last}"
        if longest >= MAX_BAD_STEPS:
            return f"between iters {first} and {last}" if first is not None else f"by iter {last}"
        return None

    @staticmethod
    def diverged(iters: str, last_saved_iter: int | None, learning_rate: float, ckpt_name: str) -> TrainingDiverged:
        lower = f"{learning_rate / 2:.2e}"
        if last_saved_iter is not None:
            where = (f"{ckpt_name} (iter {last_saved_iter}) is the last good state, kept; --resume continues "
                     f"from it, e.g. --resume --set learning_rate={lower}")
        else:
            where = f"no checkpoint was saved yet; start again with, e.g., --set learning_rate={lower}"
        return TrainingDiverged(f"loss or gradient norm not finite for {MAX_BAD_STEPS} steps in a row ({iters}); "
                                f"the run stopped; {where}, or a longer warmup_iters")
