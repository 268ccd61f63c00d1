"""Run health findings on scripted event histories (no torch, no training)."""

from __future__ import annotations

import math

from trainer.observe.events import Eval, RunStarted, Step
from trainer.observe.health import assess


def started(max_iters=1000, tokens_per_iter=1000, dataset_tokens=1_000_000, start_iter=0):
    return RunStarted(run_dir="r", config={"name": "t"}, params=1, params_with_embeddings=1, device="cuda:0",
                      device_name="NVIDIA GeForce RTX 4070", device_memory_bytes=12 * 10**9, peak_flops=58.3e12,
                      peak_flops_source="table", flops_per_token=1, tokens_per_iter=tokens_per_iter,
                      dataset_tokens=dataset_tokens, start_iter=start_iter, max_iters=max_iters,
                      precision="bfloat16", compiled=True)


def step(i, loss, mfu=0.40, reserved=8 * 10**9, total=12 * 10**9, epoch=0.0):
    return Step(iter=i, loss=loss, lr=1e-3, step_seconds=1.0, tokens_per_sec=1000.0, mfu=mfu,
                mem_allocated_bytes=reserved, mem_reserved_bytes=reserved, mem_peak_bytes=None,
                mem_total_bytes=total, tokens_seen=i * 1000, epoch=epoch, elapsed_seconds=float(i), eta_seconds=None)


def evaluation(i, train, val):
    return Eval(iter=i, train_loss=train, val_loss=val, best_val_loss=val, seconds=1.0)


def healthy(n=60):
    """A smoothly falling loss, steady MFU, memory at 2/3, evaluations improving: nothing to report."""
    events = [started()]
    events += [step(i * 10, 10.0 * 0.98**i, epoch=i * 10 * 1000 / 1e6) for i in range(n)]
    events += [evaluation(i, 6.0 - 0.3 * k, 6.05 - 0.3 * k) for k, i in enumerate(range(0, n * 10, 100))]
    return events


def kinds(findings):
    return [f.kind for f in findings]


def test_a_healthy_run_has_no_findings():
    assert assess(healthy()) == []
    assert assess([]) == []


def test_plateau_of_val_loss():
    events = healthy() + [evaluation(3000, 4.20, 4.31), evaluation(3500, 4.19, 4.30), evaluation(4000, 4.18, 4.31)]
    finding = next(f for f in assess(events) if f.kind == "plateau")
    assert finding.message.startswith("val loss plateau: 4.31, 4.30, 4.31 over the last 3 evals (iters 3,000-4,000")


def test_train_val_gap():
    events = healthy() + [evaluation(3000, 3.90, 4.25)]
    finding = next(f for f in assess(events) if f.kind == "gap")
    assert "val 4.25 vs train 3.90 at iter 3,000 (+0.35 nats" in finding.message
    assert "gap" not in kinds(assess(healthy() + [evaluation(3000, 4.20, 4.25)]))


def test_a_gap_before_one_epoch_is_not_called_overfitting():
    """Under one epoch nothing was seen twice: the gap is the splits' difference, and the finding says so."""
    early = healthy() + [evaluation(590, 3.90, 4.25)]  # healthy() is at 0.59 epochs by iter 590
    message = next(f for f in assess(early) if f.kind == "gap").message
    assert "after 0.59 epochs: not overfitting" in message and "more data or fewer" not in message
    late = healthy() + [step(1500, 3.0, epoch=1.5), evaluation(1500, 3.90, 4.25)]
    message = next(f for f in assess(late) if f.kind == "gap").message
    assert "after 1.50 epochs: overfitting; more data or fewer iterations" in message


def test_loss_spike():
    events = healthy(40)
    events.insert(31, step(305, 9.0))  # the smooth loss is ≈ 5.4 there
    findings = assess(events)
    assert kinds(findings) == ["spike"]
    assert "1 loss spike: largest 9.00 at iter 305" in findings[0].message


def test_nan_comes_first_with_the_last_finite_iteration():
    events = healthy(30) + [step(300, math.nan), step(310, math.inf)]
    findings = assess(events)
    assert findings[0].kind == "nan"
    assert findings[0].message.startswith("training loss is nan at iter 300; last finite at iter 290")


def test_mfu_drop():
    events = [started()] + [step(i, 3.0, mfu=0.42) for i in range(10, 40)] + \
             [step(i, 3.0, mfu=0.30) for i in range(40, 50)]
    finding = next(f for f in assess(events) if f.kind == "mfu_drop")
    assert finding.message.startswith("MFU dropped to 30.0% over the last 10 logs (iters 40-49) from 42.0%")
    # warm-up steps (compile) are not "earlier": a slow start is no drop
    warm = [started()] + [step(i, 3.0, mfu=0.05 if i < 10 else 0.42) for i in range(0, 40)]
    assert "mfu_drop" not in kinds(assess(warm))


def test_memory_near_the_limit():
    events = healthy(20) + [step(200, 3.0, reserved=11_700_000_000)]
    finding = next(f for f in assess(events) if f.kind == "memory")
    assert finding.message.startswith("memory near the limit: 11.7 GB of 12.0 GB (98%) at iter 200")


def test_more_epochs_than_planned():
    # planned: 1000 iters × 1000 tokens of 1,000,000 = 1.00 epoch; a resumed run went on to 1.5
    events = healthy(20) + [step(1500, 3.0, epoch=1.5)]
    finding = next(f for f in assess(events) if f.kind == "epochs")
    assert finding.message.startswith("more epochs than planned: 1.50 seen, 1.00 planned")
