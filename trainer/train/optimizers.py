"""The optimizer a recipe trains with: nanoGPT's AdamW, or Muon for the hidden matrices with AdamW for the rest.

Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers"; REFERENCE.md section 10) keeps one momentum
buffer per 2-D matrix and steps along the *orthogonalised* momentum: the nearest semi-orthogonal matrix
U·Vᵀ of its SVD U·S·Vᵀ, so every direction the matrix can move in moves by the same amount instead of the
few largest dominating. The SVD is too slow; five steps of a quintic Newton–Schulz iteration (bf16 on a GPU) reach
singular values in roughly [0.7, 1.2], which is close enough (the coefficients make it converge fast from 0,
not exactly to 1). Muon is for the blocks' matrices only: embeddings, the head, norms and scalars stay on
AdamW (their rows are looked up or scored one at a time; orthogonalising them is not what helps).

One optimizer object holds both kinds of group ("kind" = "muon" or "adamw"), so GradScaler, zero_grad,
state_dict and load_state_dict (an exact resume) work as for AdamW. The loop sets every group's "lr" to the
schedule's rate for learning_rate; a group steps at lr * "lr_scale", so Muon's rate (muon_lr) follows the
same warm-up and decay in proportion. Like the fused AdamW, it skips a non-finite step without a host sync
(the found-inf protocol of GradScaler and trainer.train.bad_steps; see MuonWithAdamW).
"""

from __future__ import annotations

import contextlib

import torch

from trainer.config import RunConfig
from trainer.model.threads import one_cpu_thread

# Quintic Newton–Schulz coefficients (a, b, c) of x -> a·x + b·(x xᵀ)x + c·(x xᵀ)²x, chosen for a steep slope
# at 0 so small singular values grow fast (Keller Jordan's tuning; the iteration is from Björck & Bowie 1971).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
ADAM_EPS = 1e-8  # torch AdamW's default


def orthogonalize(g: torch.Tensor, steps: int = NS_STEPS) -> torch.Tensor:
    """≈ U·Vᵀ for g = U·S·Vᵀ (rows x cols), by Newton–Schulz; same shape as g.

    In bf16 on a GPU (tensor cores; the iteration tolerates the rounding). On a CPU in fp32: CPUs without
    bf16 matrix units run bf16 matmuls ~40x slower than fp32 (measured here: a 384x128 Gram matrix 12.7 ms
    in bf16, 0.24 ms in fp32, 2 cores).
    """
    a, b, c = NS_COEFFICIENTS
    x = g.bfloat16() if g.is_cuda else g.float()
    tall = x.size(0) > x.size(1)
    if tall:  # iterate on the wide side: x xᵀ is then the smaller square
        x = x.T
    x = x / (x.norm() + 1e-7)  # spectral norm <= Frobenius norm = 1: inside the iteration's basin
    for _ in range(steps):
        gram = x @ x.T  # (r, r), r = min(rows, cols)
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon on the groups with kind "muon", AdamW (decoupled weight decay) on those with kind "adamw".

    It takes GradScaler's found-inf protocol (`_step_supports_amp_scaling`), as the fused AdamW does: the
    caller (trainer.train.bad_steps, or GradScaler) sets `self.found_inf`, a 0-dim tensor > 0 when this step
    must leave weights, buffers and step counts as they are. Off the CPU the skip is decided on the device,
    with no host sync: the update runs on copies and `torch.where` keeps either. On the CPU reading that
    tensor costs no sync, so the update runs in place or not at all (no copies: they would cost more than
    the update, measured by bench/muon.py). `skip_on_device` (None: by device) forces either way; both give
    bitwise the same values (tests/test_muon.py).
    """

    _step_supports_amp_scaling = True

    def __init__(self, groups: list[dict], *, lr: float, betas: tuple[float, float], momentum: float) -> None:
        defaults = dict(lr=lr, lr_scale=1.0, betas=betas, eps=ADAM_EPS, momentum=momentum, weight_decay=0.0,
                        kind="adamw")
        super().__init__(groups, defaults)
        self.skip_on_device: bool | None = None

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        found_inf = getattr(self, "found_inf", None)  # set by the caller for this step only
        grad_scale = getattr(self, "grad_scale", None)  # GradScaler's scale when the gradients are still scaled
        skip = None  # a 0-dim bool on the device: keep the old values (None: update in place)
        if found_inf is not None:
            on_device = found_inf.device.type != "cpu" if self.skip_on_device is None else self.skip_on_device
            if on_device:
                skip = found_inf > 0
            elif found_inf.item() > 0:  # a CPU tensor: no device to wait for
                return None
        for group in self.param_groups:
            lr = group["lr"] * group["lr_scale"]
            muon = group["kind"] == "muon"
            with muon_threads(group["params"]) if muon else contextlib.nullcontext():
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = p.grad if grad_scale is None else p.grad / grad_scale.to(p.device)
                    if muon:
                        self._muon(p, grad, group, lr, skip)
                    else:
                        self._adamw(p, grad, group, lr, skip)
        return None

    def _muon(self, p: torch.Tensor, grad: torch.Tensor, group: dict, lr: float, skip) -> None:
        state = self.state[p]
        if not state:
            state["momentum_buffer"] = torch.zeros_like(p)  # Muon's one buffer (AdamW keeps two)
        targets = (p, state["momentum_buffer"])
        w, buf = targets if skip is None else (t.clone() for t in targets)
        m = group["momentum"]
        buf.lerp_(grad, 1 - m)  # buf = m·buf + (1 - m)·g
        update = grad.lerp(buf, m)  # Nesterov: look one momentum step ahead
        # A tall matrix's orthogonalised update has rows of norm sqrt(cols/rows): scale it back so every
        # shape moves by a like RMS (Jordan's max(1, rows/cols)^0.5).
        scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
        if group["weight_decay"]:
            w.mul_(1 - lr * group["weight_decay"])
        w.add_(orthogonalize(update).to(p.dtype), alpha=-lr * scale)
        keep(targets, (w, buf), skip)

    def _adamw(self, p: torch.Tensor, grad: torch.Tensor, group: dict, lr: float, skip) -> None:
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=step_dtype(p), device=p.device)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        elif state["step"].device != p.device or state["step"].dtype != step_dtype(p):
            # A checkpoint's count arrives on the CPU (torch leaves "step" where it was saved)
            state["step"] = state["step"].to(p.device, step_dtype(p))
        targets = (p, state["step"], state["exp_avg"], state["exp_avg_sq"])
        w, step, exp_avg, exp_avg_sq = targets if skip is None else (t.clone() for t in targets)
        beta1, beta2 = group["betas"]
        step += 1
        # The bias corrections, 0-dim tensors on the device in float64 (as Python floats): 1 - beta^t.
        correction1, correction2 = 1 - beta1 ** step, (1 - beta2 ** step).sqrt()
        if group["weight_decay"]:
            w.mul_(1 - lr * group["weight_decay"])
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = exp_avg_sq.sqrt().div_(correction2).add_(group["eps"])
        # w - lr/correction1 · exp_avg / denom, rounded as addcdiv rounds it: (value · exp_avg) / denom, then +
        w.add_(exp_avg.mul((-lr / correction1).to(p.dtype)).div_(denom))
        keep(targets, (w, step, exp_avg, exp_avg_sq), skip)


def muon_threads(params: list[torch.Tensor]):
    """One intra-op thread for the Muon groups on a CPU (trainer.model.threads): their Newton–Schulz steps
    are many small matmuls (a block's matrices), which a busy CPU's second thread slows instead of helping:
    cpu-tiny-modern's Muon half took 53-61 ms on 2 threads and 8 ms on 1 on the shared 2-core VM (load ~6).
    The values are the same either way (sgemm's sums per element do not depend on the thread count here;
    tests/test_muon.py compares against a reference run at the default count)."""
    return one_cpu_thread(params[0].device if params else "cpu")


def step_dtype(p: torch.Tensor) -> torch.dtype:
    """AdamW's step count: float64, so the bias corrections round as Python floats do (MPS has no float64)."""
    return torch.float32 if p.device.type == "mps" else torch.float64


def keep(targets: tuple[torch.Tensor, ...], updated: tuple[torch.Tensor, ...], skip: torch.Tensor | None) -> None:
    """Each target takes its updated copy unless `skip` (0-dim bool on the device) is true. No host sync.
    skip None: the update ran in place, nothing to do."""
    if skip is not None:
        for target, new in zip(targets, updated):
            torch.where(skip, target, new, out=target)


def muon_groups(config: RunConfig, model: torch.nn.Module) -> list[dict]:
    """Muon for the 2-D matrices inside the blocks (no weight decay, as Jordan's Muon); AdamW at learning_rate
    for the embeddings and the head (weight_decay) and for norms and biases (none)."""
    hidden = [p for p in model.transformer.h.parameters() if p.requires_grad and p.dim() == 2]
    hidden_ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in hidden_ids]
    return [
        {"params": hidden, "kind": "muon", "lr_scale": config.muon_lr / config.learning_rate},
        {"params": [p for p in rest if p.dim() >= 2], "kind": "adamw", "weight_decay": config.weight_decay},
        {"params": [p for p in rest if p.dim() < 2], "kind": "adamw", "weight_decay": 0.0},
    ]


def build_optimizer(config: RunConfig, model: torch.nn.Module, device: str | torch.device) -> torch.optim.Optimizer:
    """The run's optimizer for `model` (the raw, uncompiled module) on `device`.

    muon off (recipe "nanogpt"): nanoGPT's AdamW, decay on 2-D+ tensors, fused (CPU and CUDA, torch >= 2.4: the
    loop's no-sync skip of a non-finite step relies on the fused kernel reading `found_inf`). muon on: MuonWithAdamW.
    """
    if not config.muon:
        return torch.optim.AdamW(model.optimizer_groups(config.weight_decay), lr=config.learning_rate,
                                 betas=(config.beta1, config.beta2), fused=True)
    return MuonWithAdamW(muon_groups(config, model), lr=config.learning_rate,
                         betas=(config.beta1, config.beta2), momentum=config.muon_momentum)
