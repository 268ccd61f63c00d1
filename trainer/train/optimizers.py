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

import torch

from trainer.config import RunConfig
from trainer.model.threads import one_cpu_thread

# Quintic Newton–Schulz coefficients (a, b, c) of x -> a·x + b·(x xᵀ)x + c·(x xᵀ)²x, chosen for a steep slope
# at 0 so small singular values grow fast (Keller Jordan's tuning; the iteration is from Björck & Bowie 1971).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
ADAM_EPS = 1e-8  # torch AdamW's default


def orthogonalize(g: torch.Tensor, steps: int = NS_STEPS) -> torch.Tensor:
    """≈ U·Vᵀ for one matrix g = U·S·Vᵀ (rows x cols); same shape as g. The optimizer stacks its matrices of a
    shape through orthogonalize_stack; this is the same iteration for one."""
    return orthogonalize_stack(g.unsqueeze(0), steps)[0]


def orthogonalize_stack(x: torch.Tensor, steps: int = NS_STEPS) -> torch.Tensor:
    """≈ U·Vᵀ of each matrix of a stack (k, rows, cols) by Newton–Schulz, each on its own, in one batched
    matmul per term (one kernel for all k); same shape as x.

    The Gram matrix is taken on the short side, (k, r, r) with r = min(rows, cols): x xᵀ for a wide stack,
    xᵀ x for a tall one (then x·p replaces p·x: the same iteration on xᵀ, without copying a transpose).
    In bf16 on a GPU (tensor cores; the iteration tolerates the rounding). On a CPU in fp32: CPUs without
    bf16 matrix units run bf16 matmuls ~40x slower than fp32 (measured here: a 384x128 Gram matrix 12.7 ms
    in bf16, 0.24 ms in fp32, 2 cores).
    """
    a, b, c = NS_COEFFICIENTS
    tall = x.size(-2) > x.size(-1)
    x = x.bfloat16() if x.is_cuda else x.float()
    # Each matrix by its own Frobenius norm: spectral norm <= Frobenius norm = 1, inside the iteration's basin
    x = x / (torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x.mT @ x if tall else x @ x.mT  # (k, r, r)
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b·gram + c·gram², (k, r, r)
        x = torch.baddbmm(x, x, poly, beta=a) if tall else torch.baddbmm(x, poly, x, beta=a)  # a·x + x·poly
    return x


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon on the groups with kind "muon", AdamW (decoupled weight decay) on those with kind "adamw".

    A group steps all its tensors together: the elementwise updates as torch._foreach_* ops (one call a group,
    one kernel for many tensors on a GPU, no Python loop per tensor on a CPU) and the Newton–Schulz iteration
    once per matrix shape on the stacked matrices. AdamW's arithmetic per element is the one-tensor-at-a-time
    update's, bitwise; Muon's batched matmuls (baddbmm) round a few ulp from separate matmuls and adds
    (tests/test_muon.py measures both). The state per parameter is unchanged ("momentum_buffer"; "step",
    "exp_avg", "exp_avg_sq"), so checkpoints written before load and resume as they did.

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
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if grad_scale is not None:
                grads = torch._foreach_div(grads, grad_scale.to(params[0].device))
            lr = group["lr"] * group["lr_scale"]
            if group["kind"] == "muon":
                with muon_threads(params):
                    self._muon(params, grads, group, lr, skip)
            else:
                self._adamw(params, grads, group, lr, skip)
        return None

    def _muon(self, params: list[torch.Tensor], grads: list[torch.Tensor], group: dict, lr: float, skip) -> None:
        for p in params:
            if not self.state[p]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p)  # Muon's one buffer (AdamW keeps two)
        targets = params + [self.state[p]["momentum_buffer"] for p in params]
        updated = targets if skip is None else [t.clone() for t in targets]
        weights, bufs = updated[:len(params)], updated[len(params):]
        m = group["momentum"]
        torch._foreach_lerp_(bufs, grads, 1 - m)  # buf = m·buf + (1 - m)·g
        updates = torch._foreach_lerp(grads, bufs, m)  # Nesterov: look one momentum step ahead
        if group["weight_decay"]:
            torch._foreach_mul_(weights, 1 - lr * group["weight_decay"])
        for members in same_shape(params):
            ortho = orthogonalize_stack(torch.stack([updates[i] for i in members]))  # (k, rows, cols)
            rows, cols = params[members[0]].shape
            # A tall matrix's orthogonalised update has rows of norm sqrt(cols/rows): scale it back so every
            # shape moves by a like RMS (Jordan's max(1, rows/cols)^0.5).
            scale = max(1.0, rows / cols) ** 0.5
            torch._foreach_add_([weights[i] for i in members], list(ortho.to(weights[members[0]].dtype).unbind(0)),
                                alpha=-lr * scale)
        keep(targets, updated, skip)

    def _adamw(self, params: list[torch.Tensor], grads: list[torch.Tensor], group: dict, lr: float, skip) -> None:
        states = [self.adamw_state(p) for p in params]
        targets = params + [s[key] for key in ("step", "exp_avg", "exp_avg_sq") for s in states]
        updated = targets if skip is None else [t.clone() for t in targets]
        k = len(params)
        weights, steps, exp_avgs, exp_avg_sqs = (updated[i * k:(i + 1) * k] for i in range(4))
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, 1)
        # The bias corrections, 0-dim tensors on the device in float64 (as Python floats): 1 - beta^t.
        correction1 = torch._foreach_pow(beta1, steps)
        correction2 = torch._foreach_pow(beta2, steps)
        torch._foreach_neg_(correction1)  # -beta^t + 1 rounds as 1 - beta^t: one rounding of the same sum
        torch._foreach_add_(correction1, 1)
        torch._foreach_neg_(correction2)
        torch._foreach_add_(correction2, 1)
        torch._foreach_sqrt_(correction2)
        if group["weight_decay"]:
            torch._foreach_mul_(weights, 1 - lr * group["weight_decay"])
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, correction2)
        torch._foreach_add_(denom, group["eps"])
        # -lr / correction1 as a tensor divides it: the reciprocal times -lr (torch.Tensor.__rdiv__); then in
        # the weights' dtype, one stacked cast (k,) when the group has one dtype
        torch._foreach_reciprocal_(correction1)
        torch._foreach_mul_(correction1, -lr)
        if len({p.dtype for p in params}) == 1:
            step_size = torch.stack(correction1).to(params[0].dtype).unbind(0)
        else:
            step_size = [size.to(p.dtype) for size, p in zip(correction1, params)]
        # w - lr/correction1 · exp_avg / denom, rounded as addcdiv rounds it: (value · exp_avg) / denom, then +
        change = torch._foreach_mul(exp_avgs, step_size)
        torch._foreach_div_(change, denom)
        torch._foreach_add_(weights, change)
        keep(targets, updated, skip)

    def adamw_state(self, p: torch.Tensor) -> dict:
        """p's AdamW state, made on its first step; a checkpoint's count moved to p's device and dtype."""
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=step_dtype(p), device=p.device)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        elif state["step"].device != p.device or state["step"].dtype != step_dtype(p):
            # A checkpoint's count arrives on the CPU (torch leaves "step" where it was saved)
            state["step"] = state["step"].to(p.device, step_dtype(p))
        return state


def same_shape(params: list[torch.Tensor]) -> list[list[int]]:
    """The indices of `params` (2-D) grouped by shape and dtype, each group in the order of `params`: each
    group's matrices are orthogonalised as one stack (k, rows, cols). A tall shape and its transpose stay
    apart: stacking one transposed would copy it there and back, which costs a CPU more than a second stack."""
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault((p.size(0), p.size(1), p.dtype), []).append(i)
    return list(groups.values())


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


def keep(targets: list[torch.Tensor], updated: list[torch.Tensor], skip: torch.Tensor | None) -> None:
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
