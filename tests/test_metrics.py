"""The metrics component alone (trainer/observe/metrics.py): the ETA's smoothing and warm-up, evals to come,
MFU, and StepMetrics' log windows and the Step event it builds."""

from __future__ import annotations

import pytest

from trainer.observe import events as ev
from trainer.observe.metrics import EtaEstimator, StepMetrics, evals_to_come, mfu


def test_eta_leaves_out_warmup_and_counts_evals_to_come():
    eta = EtaEstimator(warmup_steps=2)
    for seconds in (30.0, 10.0, 1.0, 1.0):
        eta.add_step(seconds)
    assert eta.step_seconds == 1.0
    eta.add_eval(60.0)  # the first evaluation compiles the eval-mode graph: left out once others exist
    assert eta.eval_seconds == 60.0
    eta.add_eval(5.0)
    eta.add_checkpoint(2.0)
    assert eta.eta(10, evals_left=2, checkpoints_left=2) == 10 * 1.0 + 2 * 5.0 + 2 * 2.0
    assert evals_to_come(1, 100, 50) == 2  # at 50, and the final one at 100
    assert evals_to_come(50, 100, 50) == 2
    assert evals_to_come(51, 100, 50) == 1
    assert mfu(1000.0, 1e6, None) is None and mfu(1000.0, 1e6, 1e10) == 0.1


def test_a_window_moves_the_eta_as_its_steps_one_by_one_would():
    by_steps, by_window = EtaEstimator(warmup_steps=0), EtaEstimator(warmup_steps=0)
    for e in (by_steps, by_window):
        e.add_step(2.0)
    for _ in range(4):
        by_steps.add_step(1.0)
    by_window.add_window(4.0, 4)  # 4 steps of 1 s, measured together at a log point
    assert by_window.step_seconds == pytest.approx(by_steps.step_seconds)
    warm = EtaEstimator(warmup_steps=2)
    warm.add_window(50.0, 10)  # the window holding the compile steps is left out whole
    assert warm.step_seconds is None
    warm.add_window(10.0, 10)
    assert warm.step_seconds == 1.0


def metrics(**changes) -> StepMetrics:
    args = dict(tokens_per_iter=1_000, flops_per_token=1e6, peak_flops=1e10, dataset_tokens=10_000,
                max_iters=100, eval_interval=50, always_save_checkpoint=True, device="cpu", started=0.0,
                eta=EtaEstimator(warmup_steps=0))  # no warm-up in these tests: every window counts
    args.update(changes)
    return StepMetrics(**args)


def test_step_event_from_a_log_window():
    m = metrics()
    for seconds in (0.1, 0.1, 0.2, 0.2):
        m.add_step(seconds)
    step = m.step_event(9, loss=2.5, grad_norm=0.7, lr=1e-3, skipped_steps=1)
    assert isinstance(step, ev.Step) and (step.iter, step.loss, step.lr, step.grad_norm) == (9, 2.5, 1e-3, 0.7)
    assert step.step_seconds == pytest.approx(0.15)  # the window's mean
    assert step.tokens_per_sec == pytest.approx(1_000 / 0.15)
    assert step.mfu == pytest.approx(1_000 / 0.15 * 1e6 / 1e10)
    assert step.tokens_seen == 10_000 and step.epoch == 1.0
    # 90 steps left x 0.15 s; no eval or checkpoint measured yet: counted as nothing, never guessed
    assert step.eta_seconds == pytest.approx(90 * 0.15)
    assert step.skipped_steps == 1
    assert (m.window_steps, m.window_seconds) == (0, 0.0)  # the next window starts afresh


def test_step_event_unknowns_and_several_processes():
    m = metrics(peak_flops=None)
    m.add_step(0.5)
    step = m.step_event(0, loss=float("nan"), grad_norm=float("inf"), lr=1e-3)
    assert step.mfu is None and step.grad_norm is None  # unknown peak; a non-finite norm is not a number shown
    assert step.mem_reserved_bytes and step.mem_reserved_bytes > 0  # RSS on CPU
    two = metrics(world_size=2)
    two.add_step(0.1)
    assert two.step_event(0, loss=1.0, grad_norm=1.0, lr=1e-3).mfu == pytest.approx(1_000 / 0.1 * 1e6 / 1e10 / 2)


def test_eta_counts_the_measured_evals_and_checkpoints_to_come():
    m = metrics()
    m.eta.add_eval(3.0)
    m.eta.add_checkpoint(1.0)
    m.add_step(0.1)
    step = m.step_event(10, loss=1.0, grad_norm=1.0, lr=1e-3)
    # 89 steps, evals at 50 and the final one at 100, a checkpoint with each (always_save_checkpoint)
    assert step.eta_seconds == pytest.approx(89 * 0.1 + 2 * 3.0 + 2 * 1.0)
