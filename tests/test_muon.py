"""Muon with AdamW (trainer.train.optimizers): the orthogonalisation, the groups, the schedule per group, the
hand-written AdamW against torch's, one momentum buffer, and an exact resume through the Trainer."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.model.gpt import GPT, ModelArgs
from trainer.observe import events as ev
from trainer.train.bad_steps import step_unless_bad
from trainer.train.controls import Controls
from trainer.train.optimizers import NS_COEFFICIENTS, MuonWithAdamW, build_optimizer, orthogonalize, orthogonalize_stack

from tests.engine_helpers import train
from tests.tiny_trainer_child import tiny


def small_model(config):
    torch.manual_seed(0)
    return GPT(ModelArgs.from_dict(config.model_args()))


def test_newton_schulz_brings_every_singular_value_near_one_for_wide_and_tall_matrices():
    gen = torch.Generator().manual_seed(0)
    for shape in ((32, 96), (96, 32), (64, 64)):
        # A known spectrum: singular values spread over a decade, 0.1..1 (a gradient's spread). Five steps lift
        # values down to ~1e-3 of the Frobenius norm; a random square matrix's near-zero ones stay small.
        r = min(shape)
        u, _ = torch.linalg.qr(torch.randn(shape[0], r, generator=gen))
        v, _ = torch.linalg.qr(torch.randn(shape[1], r, generator=gen))
        g = u @ torch.diag(torch.logspace(-1, 0, r)) @ v.T
        o = orthogonalize(g)
        assert o.shape == g.shape
        s = torch.linalg.svdvals(o.float())
        # The quintic's fixed point is a band, not exactly 1 (Jordan: about 0.7..1.2).
        assert s.min() > 0.5 and s.max() < 1.3, (shape, s.min(), s.max())
        # The direction is g's: U·Vᵀ has a positive inner product with g.
        assert (o.float() * g).sum() > 0


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    config = tiny(recipe="modern", untied_head=True)
    model = small_model(config)
    optimizer = build_optimizer(config, model, "cpu")
    assert isinstance(optimizer, MuonWithAdamW)
    kinds = {id(p): g["kind"] for g in optimizer.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert len(kinds) == len(names)  # every parameter in exactly one group
    for name, p in names.items():
        want = "muon" if name.startswith("transformer.h.") and p.dim() == 2 else "adamw"
        assert kinds[id(p)] == want, name
    assert kinds[id(names["lm_head.weight"])] == "adamw" and kinds[id(names["transformer.wte.weight"])] == "adamw"
    nanogpt = build_optimizer(tiny(), small_model(tiny()), "cpu")
    assert type(nanogpt) is torch.optim.AdamW  # recipe "nanogpt": nanoGPT's optimizer, unchanged


def test_muon_keeps_one_buffer_and_its_rate_follows_the_schedule_in_proportion():
    config = tiny(recipe="modern", muon_lr=0.05, learning_rate=1e-2)
    model = small_model(config)
    optimizer = build_optimizer(config, model, "cpu")
    muon = next(g for g in optimizer.param_groups if g["kind"] == "muon")
    assert muon["lr_scale"] == 0.05 / 1e-2
    w = muon["params"][0]
    before = w.detach().clone()
    for group in optimizer.param_groups:
        group["lr"] = 1e-3  # the loop sets the schedule's rate for learning_rate: a tenth of the peak here
    w.grad = torch.randn_like(w)
    optimizer.step()
    assert list(optimizer.state[w]) == ["momentum_buffer"]  # one buffer (AdamW keeps two)
    # First step: buffer = (1 - m)·g, Nesterov update = (1 - m)·g + m·buffer: a multiple of g, so the step is
    # 0.005 (= 0.05 x 1e-3 / 1e-2) times orthogonalize(g) and the shape's scale.
    scale = max(1.0, w.size(0) / w.size(1)) ** 0.5
    expected = before - 0.005 * scale * orthogonalize(w.grad * 0.0975).float()
    assert torch.allclose(w.detach(), expected, atol=1e-6)


def test_the_adamw_groups_step_as_torch_adamw_does():
    torch.manual_seed(0)
    # One group, two tensors of two dtypes (each steps in its own; the group's step sizes are cast per dtype)
    ours = [torch.nn.Parameter(torch.randn(8, 4)), torch.nn.Parameter(torch.randn(6, dtype=torch.float64))]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    optimizer = MuonWithAdamW([{"params": ours, "kind": "adamw", "weight_decay": 0.1}], lr=1e-2, betas=(0.9, 0.95),
                              momentum=0.95)
    torch_adamw = torch.optim.AdamW(theirs, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    for _ in range(5):
        for a, b in zip(ours, theirs):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        optimizer.step()
        torch_adamw.step()
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and torch.allclose(a, b, atol=1e-6)


def test_a_modern_run_resumes_with_bitwise_equal_losses(pattern_data, tmp_path):
    config = tiny(recipe="modern", muon_lr=0.02, max_iters=24, lr_decay_iters=24, eval_interval=8)
    straight, _, _ = train(pattern_data, tmp_path / "straight", config)
    controls = Controls()

    def stop_at_13(step):
        if step.iter == 13:
            controls.stop("test")

    first, trainer, reason = train(pattern_data, tmp_path / "split", config, controls=controls, on_step=stop_at_13)
    assert reason == "stopped" and isinstance(trainer.optimizer, MuonWithAdamW)
    second, _, reason = train(pattern_data, tmp_path / "split", config, resume=True)
    assert reason == "completed" and second.of(ev.RunStarted)[0].start_iter == 14
    resumed = {s.iter: s.loss for s in second.of(ev.Step)}
    expected = {s.iter: s.loss for s in straight.of(ev.Step) if s.iter >= 14}
    assert resumed == expected  # bitwise: the momentum buffers, AdamW's moments and steps all restored
    assert straight.of(ev.Step)[-1].loss < straight.of(ev.Step)[0].loss - 1.0  # and it learns


# --- no host sync: the found-inf protocol, bitwise the plain in-place update ---------------------------------

def mixed_params(seed):
    """Wide, tall and square matrices for Muon, a matrix and two vectors for AdamW."""
    gen = torch.Generator().manual_seed(seed)
    shapes = ((48, 16), (16, 48), (32, 32), (300, 20), (20,), (7,))
    return [torch.nn.Parameter(torch.randn(shape, generator=gen)) for shape in shapes]


def mixed_groups(params):
    return [{"params": params[:3], "kind": "muon", "lr_scale": 3.0, "weight_decay": 0.05},
            {"params": params[3:4], "kind": "adamw", "weight_decay": 0.1},
            {"params": params[4:], "kind": "adamw", "weight_decay": 0.0}]


def one_matrix_orthogonalize(g, steps=5):
    """Newton–Schulz one matrix at a time, three matmuls a step: what MuonWithAdamW ran before it stacked the
    matrices of a shape (orthogonalize_stack, with baddbmm)."""
    a, b, c = NS_COEFFICIENTS
    x = g.float()
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def in_place_reference(params, state, lr=1e-2, betas=(0.9, 0.95), momentum=0.95):
    """Muon + AdamW written the plain way (in place, one tensor at a time, the step count a host float, every
    step taken): what MuonWithAdamW computed before it learnt to skip on the device and to batch its groups."""
    for group in mixed_groups(params):
        group_lr = lr * group.get("lr_scale", 1.0)
        for p in group["params"]:
            s = state.setdefault(id(p), {})
            if group["weight_decay"]:
                p.data.mul_(1 - group_lr * group["weight_decay"])
            if group["kind"] == "muon":
                buf = s.setdefault("buf", torch.zeros_like(p))
                buf.lerp_(p.grad, 1 - momentum)
                scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
                p.data.add_(one_matrix_orthogonalize(p.grad.lerp(buf, momentum)), alpha=-group_lr * scale)
                continue
            s["t"] = s.get("t", 0) + 1
            m, v = s.setdefault("m", torch.zeros_like(p)), s.setdefault("v", torch.zeros_like(p))
            m.lerp_(p.grad, 1 - betas[0])
            v.mul_(betas[1]).addcmul_(p.grad, p.grad, value=1 - betas[1])
            denom = (v.sqrt() / math.sqrt(1 - betas[1] ** s["t"])).add_(1e-8)
            p.data.addcdiv_(m, denom, value=-group_lr / (1 - betas[0] ** s["t"]))


def no_host_reads(monkeypatch):
    """Every way a tensor's value reaches Python raises while the returned dict's "on" is True."""
    inside = {"on": False}
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        real = getattr(torch.Tensor, name)

        def check(self, *args, _real=real, _name=name, **kwargs):
            if inside["on"]:
                raise AssertionError(f"Tensor.{_name} called inside the optimizer step")
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, check)
    return inside


@pytest.mark.parametrize("on_device", [True, False])
def test_a_good_step_is_the_plain_one_tensor_at_a_time_update_on_either_path(monkeypatch, on_device):
    ours, reference = mixed_params(0), mixed_params(0)
    optimizer = MuonWithAdamW(mixed_groups(ours), lr=1e-2, betas=(0.9, 0.95), momentum=0.95)
    optimizer.skip_on_device = on_device  # True: as on a GPU (copies and torch.where); False: the CPU's
    state: dict = {}
    inside = no_host_reads(monkeypatch)
    gen = torch.Generator().manual_seed(1)
    good = torch.zeros(())
    for i in range(12):
        for a, b in zip(ours, reference):
            grad = torch.randn(a.shape, generator=gen) * 10.0 ** (i % 4 - 2)  # gradients over 4 decades
            a.grad, b.grad = grad.clone(), grad.clone()
        inside["on"] = on_device  # the device path reads nothing on the host
        step_unless_bad(optimizer, good)  # the loop's call: found_inf = 0
        inside["on"] = False
        in_place_reference(reference, state)
        for a, b in zip(ours[3:], reference[3:]):  # AdamW: the same ops a tensor, bitwise
            assert torch.equal(a, b), (i, tuple(a.shape), (a - b).abs().max())
        for a, b in zip(ours[:3], reference[:3]):
            # Muon: the stacked baddbmm rounds differently from the reference's matmuls and adds: measured at
            # most 7.2e-7 apart (a few ulp of weights ~1) after 12 steps, on the wide, tall and square matrix.
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m, i=i: f"step {i}: {m}")
    assert optimizer._step_supports_amp_scaling


def test_the_batched_step_is_deterministic_and_bitwise_the_same_on_either_skip_path():
    runs = []
    for on_device in (True, False, True):
        params = mixed_params(0)
        optimizer = MuonWithAdamW(mixed_groups(params), lr=1e-2, betas=(0.9, 0.95), momentum=0.95)
        optimizer.skip_on_device = on_device
        gen = torch.Generator().manual_seed(1)
        for i in range(6):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen) * 10.0 ** (i % 4 - 2)
            step_unless_bad(optimizer, torch.zeros(()))
        runs.append([p.detach().clone() for p in params] + [t for p in params for t in optimizer.state[p].values()])
    for run in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], run))


def test_a_stack_of_matrices_is_orthogonalised_each_on_its_own():
    gen = torch.Generator().manual_seed(0)
    for shape in ((16, 40), (40, 16)):  # a wide stack and a tall one (its Gram matrix on the short side too)
        stack = torch.randn(3, *shape, generator=gen) * torch.tensor([1e-3, 1.0, 1e3]).view(3, 1, 1)
        together = orthogonalize_stack(stack)
        for i in range(3):  # each by its own norm: the scales 1e-3..1e3 do not leak into each other
            assert torch.equal(together[i], orthogonalize(stack[i]))
            torch.testing.assert_close(together[i], one_matrix_orthogonalize(stack[i]), rtol=1e-5, atol=1e-6)


def test_still_scaled_gradients_step_as_the_unscaled_ones_and_the_state_keeps_its_format():
    plain, scaled = mixed_params(0), mixed_params(0)
    optimizers = [MuonWithAdamW(mixed_groups(ps), lr=1e-2, betas=(0.9, 0.95), momentum=0.95) for ps in (plain, scaled)]
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        for a, b in zip(plain, scaled):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad * 1024.0  # a power of two: unscaling is exact
        optimizers[0].step()
        optimizers[1].grad_scale = torch.tensor(1024.0)  # as GradScaler.step sets it (fp16)
        optimizers[1].step()
        del optimizers[1].grad_scale
    assert all(torch.equal(a, b) for a, b in zip(plain, scaled))
    state = optimizers[0].state_dict()["state"]  # a checkpoint's: the keys an older run saved, per parameter
    assert [sorted(state[i]) for i in range(len(plain))] == [["momentum_buffer"]] * 3 + [
        ["exp_avg", "exp_avg_sq", "step"]] * 3
    assert all(state[i]["step"].dtype == torch.float64 and state[i]["step"].dim() == 0 for i in range(3, 6))


@pytest.mark.parametrize("on_device", [True, False])
def test_a_bad_step_leaves_weights_buffers_and_counts_as_they_were(monkeypatch, on_device):
    params = mixed_params(0)
    optimizer = MuonWithAdamW(mixed_groups(params), lr=1e-2, betas=(0.9, 0.95), momentum=0.95)
    optimizer.skip_on_device = on_device
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer.step()  # one good step: every buffer exists and is non-zero
    before = [p.detach().clone() for p in params]
    state_before = {id(p): {k: v.clone() for k, v in optimizer.state[p].items()} for p in params}
    for p in params:
        p.grad = torch.full_like(p, float("nan"))
    inside = no_host_reads(monkeypatch)
    inside["on"] = on_device
    step_unless_bad(optimizer, torch.ones(()))  # a non-finite step: skipped
    inside["on"] = False
    for p, old in zip(params, before):
        assert torch.equal(p, old)
        for key, value in optimizer.state[p].items():
            assert torch.equal(value, state_before[id(p)][key]), key
    assert all(float(optimizer.state[p]["step"]) == 1 for p in params[3:])  # the count did not advance
