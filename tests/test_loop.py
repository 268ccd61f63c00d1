"""The Trainer on a very small model (vocabulary 256, so each step takes milliseconds on CPU): controls,
resume parity, NaN skipping, out-of-memory handling, compile fallback, batches and metrics."""

from __future__ import annotations

import math
import os
import signal
import threading

import numpy as np
import pytest
import torch

from trainer.observe import events as ev
from trainer.data.batches import BatchLoader
from trainer.train.checkpoint import load_checkpoint
from trainer.train.controls import Controls
from trainer.errors import FwtuiError
from trainer.train.bad_steps import TrainingDiverged
from trainer.train.loop import Trainer
from trainer.model.gpt import GPT
from trainer.train.signals import stop_on_signals

from tests.engine_helpers import Recorder, train
from tests.tiny_trainer_child import tiny


@pytest.fixture(scope="module")
def data(pattern_data):
    """The tiny model's data: tests/conftest.py write_pattern_dataset."""
    return pattern_data


def test_trains_evaluates_and_checkpoints(data, tmp_path):
    rec, trainer, reason = train(data, tmp_path)
    assert reason == "completed"
    started = rec.of(ev.RunStarted)[0]
    assert started.precision == "float32" and started.compiled is False and started.start_iter == 0
    steps = rec.of(ev.Step)
    assert [s.iter for s in steps] == list(range(40))
    assert steps[-1].loss < steps[0].loss - 1.0
    assert [e.iter for e in rec.of(ev.Eval)] == [0, 10, 20, 30, 40]
    assert [(c.iter, c.reason) for c in rec.of(ev.CheckpointSaved)] == [(10, "eval"), (20, "eval"), (30, "eval"),
                                                                        (40, "final")]
    finished = rec.of(ev.Finished)[0]
    assert (finished.iter, finished.reason) == (40, "completed")
    assert finished.final_val_loss == rec.of(ev.Eval)[-1].val_loss
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["iter_num"] == 40 and ckpt["data_position"]["position"] == 40
    assert not any(k.startswith("_orig_mod.") for k in ckpt["model"])


def test_mfu_is_unknown_on_cpu_and_measured_with_a_given_peak(data, tmp_path):
    rec, _, _ = train(data, tmp_path / "a", tiny(max_iters=3))
    started = rec.of(ev.RunStarted)[0]
    assert started.peak_flops is None and started.peak_flops_source.startswith("unknown")
    assert all(s.mfu is None for s in rec.of(ev.Step))
    assert all(s.mem_reserved_bytes and s.mem_reserved_bytes > 0 for s in rec.of(ev.Step))  # RSS on CPU
    rec, _, _ = train(data, tmp_path / "b", tiny(max_iters=3), peak_tflops=1.0)
    assert rec.of(ev.RunStarted)[0].peak_flops == 1e12
    assert all(s.mfu is not None and s.mfu > 0 for s in rec.of(ev.Step))


def test_resume_continues_with_bitwise_equal_losses(data, tmp_path):
    straight, _, _ = train(data, tmp_path / "straight", tiny(dropout=0.1))
    controls = Controls()

    def stop_at_17(step):
        if step.iter == 17:
            controls.stop("test")

    first, _, reason = train(data, tmp_path / "split", tiny(dropout=0.1), controls=controls, on_step=stop_at_17)
    assert reason == "stopped"
    assert [(c.iter, c.reason) for c in first.of(ev.CheckpointSaved)][-1] == (18, "stop")
    assert first.of(ev.Finished)[0].reason == "stopped"
    second, _, reason = train(data, tmp_path / "split", tiny(dropout=0.1), resume=True)
    assert reason == "completed"
    assert second.of(ev.RunStarted)[0].start_iter == 18
    resumed = {s.iter: s.loss for s in second.of(ev.Step)}
    expected = {s.iter: s.loss for s in straight.of(ev.Step) if s.iter >= 18}
    assert resumed == expected  # bitwise: dropout RNG, data position, optimizer and schedule all restored
    assert second.of(ev.Eval)[-1].val_loss == straight.of(ev.Eval)[-1].val_loss


def test_resume_refuses_another_model_shape_or_a_finished_run(data, tmp_path):
    train(data, tmp_path, tiny(max_iters=10))
    with pytest.raises(FwtuiError, match="n_embd"):
        train(data, tmp_path, tiny(max_iters=20, n_embd=64), resume=True)
    with pytest.raises(FwtuiError, match="max_iters"):
        train(data, tmp_path, tiny(max_iters=10), resume=True)


def test_requests_and_pause_from_another_thread(data, tmp_path):
    controls = Controls()
    paused = threading.Event()

    def sink_pause(step):
        if step.iter == 12:
            controls.pause()

    rec = Recorder(sink_pause)

    def watch(event):
        rec(event)
        if isinstance(event, ev.StateChanged) and event.state == "paused":
            paused.set()

    def other_face():
        assert paused.wait(30)
        controls.request_eval()
        controls.request_checkpoint()
        controls.request_sample("a", max_new_tokens=5)  # "a" is GPT-2 id 64, inside the toy vocabulary
        controls.resume()

    helper = threading.Thread(target=other_face)
    helper.start()
    trainer = Trainer(tiny(max_iters=20), data, tmp_path, sink=watch, controls=controls)
    assert trainer.run() == "completed"
    helper.join()
    kinds = [(e.kind, getattr(e, "iter", None)) for e in rec.events if e.kind != "step"]
    i = kinds.index(("state", 13))
    assert ("eval", 13) in kinds[i:] and ("checkpoint", 13) in kinds[i:]
    states = [e.state for e in rec.of(ev.StateChanged)]
    assert states == ["paused", "running"]
    assert [c.reason for c in rec.of(ev.CheckpointSaved) if c.iter == 13] == ["requested"]
    samples = rec.of(ev.Sample)
    assert [(s.iter, s.prompt) for s in samples] == [(13, "a")] and isinstance(samples[0].text, str)
    assert rec.of(ev.Warning) == []
    assert [s.iter for s in rec.of(ev.Step)] == list(range(20))  # nothing skipped, nothing repeated


def test_stop_while_paused_checkpoints_and_finishes(data, tmp_path):
    controls = Controls()

    def on_step(step):
        if step.iter == 4:
            controls.pause()
            threading.Timer(0.3, controls.stop).start()

    rec, _, reason = train(data, tmp_path, controls=controls, on_step=on_step)
    assert reason == "stopped"
    assert rec.of(ev.CheckpointSaved)[-1].reason == "stop"
    assert rec.of(ev.Finished)[0].iter == 5
    assert load_checkpoint(tmp_path)["iter_num"] == 5


def test_compile_failure_falls_back_to_eager(data, tmp_path, monkeypatch):
    class Broken(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, *args, **kwargs):
            raise RuntimeError("backend compiler exploded")

    monkeypatch.setattr(torch, "compile", lambda module, **kw: Broken(module))
    rec, trainer, reason = train(data, tmp_path, tiny(compile=True, max_iters=12))
    assert reason == "completed" and trainer.compiled is False
    assert rec.of(ev.RunStarted)[0].compiled is True
    assert any("torch.compile failed" in w.message for w in rec.of(ev.Warning))
    assert [s.iter for s in rec.of(ev.Step)] == list(range(12))


def nan_forward(monkeypatch, bad_calls):
    """Make the training forward pass return a NaN loss on the given call numbers (0-based)."""
    original = GPT.forward
    calls = {"n": 0}

    def forward(self, idx, targets=None):
        logits, loss = original(self, idx, targets)
        if self.training and targets is not None:
            if bad_calls(calls["n"]):
                loss = loss * float("nan")
            calls["n"] += 1
        return logits, loss

    monkeypatch.setattr(GPT, "forward", forward)


def test_nan_loss_skips_the_step_and_training_goes_on(data, tmp_path, monkeypatch):
    nan_forward(monkeypatch, lambda n: n in (3, 4))
    rec, trainer, reason = train(data, tmp_path, tiny(max_iters=12))
    assert reason == "completed"
    warnings = [w.message for w in rec.of(ev.Warning)]
    assert len(warnings) == 2 and all("step skipped" in m for m in warnings)
    assert all(torch.isfinite(p).all() for p in trainer.raw_model.parameters())
    assert math.isfinite(rec.of(ev.Eval)[-1].val_loss)


def test_divergence_stops_with_the_last_good_checkpoint_which_resume_continues(data, tmp_path, monkeypatch):
    diverging = {"on": True}
    nan_forward(monkeypatch, lambda n: diverging["on"] and n >= 28)  # steps 28..32: the eval at 30 falls inside
    written = {}

    def keep_each_checkpoint(event):
        if isinstance(event, ev.CheckpointSaved):
            written[event.iter] = load_checkpoint(tmp_path)

    rec = Recorder()
    trainer = Trainer(tiny(), data, tmp_path, sink=lambda e: (rec(e), keep_each_checkpoint(e)))
    with pytest.raises(TrainingDiverged, match=r"iters 28 to 32\); the run stopped; ckpt.pt \(iter 20\) is the last "
                                               r"good state, kept; --resume continues from it"):
        trainer.run()
    assert sorted(written) == [10, 20]  # nothing from the first bad step on; before, iter 30 replaced it
    assert any("checkpoint at iter 30 not saved: the last 2 steps were not finite" in w.message
               for w in rec.of(ev.Warning))
    on_disk = load_checkpoint(tmp_path)
    assert on_disk["iter_num"] == 20
    for name, tensor in written[20]["model"].items():
        assert torch.equal(on_disk["model"][name], tensor), name
    assert on_disk["data_position"] == written[20]["data_position"]

    diverging["on"] = False  # e.g. a lower learning rate: the resumed run is the straight run from iter 20
    resumed, _, reason = train(data, tmp_path, resume=True)
    straight, _, _ = train(data, tmp_path / "straight")
    assert reason == "completed" and resumed.of(ev.RunStarted)[0].start_iter == 20
    assert {s.iter: s.loss for s in resumed.of(ev.Step)} == {s.iter: s.loss for s in straight.of(ev.Step)
                                                             if s.iter >= 20}


def test_a_nan_step_is_skipped_on_the_device_and_counted_at_the_next_log_point(data, tmp_path, monkeypatch):
    nan_forward(monkeypatch, lambda n: n == 5)  # step 5 only; logged at 0, 4, 8, 11
    original = Trainer._step
    seen = {}

    def step(self, lr):
        n = self.loader.position  # = the step's index (one micro-batch a step)
        if n == 5:
            seen["before"] = {k: v.clone() for k, v in self.raw_model.state_dict().items()}
            seen["moments"] = [s["exp_avg"].clone() for s in self.optimizer.state.values()]
            seen["count"] = [s["step"].clone() for s in self.optimizer.state.values()]
        out = original(self, lr)
        if n == 5:
            after = self.raw_model.state_dict()
            assert all(torch.equal(seen["before"][k], after[k]) for k in after)  # no update from step 5
            assert all(torch.equal(a, s["exp_avg"]) for a, s in zip(seen["moments"], self.optimizer.state.values()))
            assert all(torch.equal(c, s["step"]) for c, s in zip(seen["count"], self.optimizer.state.values()))
            seen["checked"] = True
        return out

    monkeypatch.setattr(Trainer, "_step", step)
    rec, trainer, reason = train(data, tmp_path, tiny(max_iters=12, log_interval=4))
    assert reason == "completed" and seen.get("checked")
    steps = [s for s in rec.of(ev.Step) if s.log_point]  # a slow machine may add live points between
    assert [(s.iter, s.skipped_steps) for s in steps] == [(0, 0), (4, 0), (8, 1), (11, 1)]
    warnings = [w.message for w in rec.of(ev.Warning)]
    assert warnings == ["iters 5 to 8: 1 step skipped (loss or gradient norm not finite); 0 of 5 in a row at iter 8"]
    assert steps[-1].loss < steps[0].loss  # training went on
    assert all(torch.isfinite(p).all() for p in trainer.raw_model.parameters())


def test_a_streak_that_ends_inside_a_log_window_still_stops_the_run(data, tmp_path, monkeypatch):
    nan_forward(monkeypatch, lambda n: 2 <= n <= 6)  # 5 bad steps in a row, good again before the log point
    rec = Recorder()
    with pytest.raises(TrainingDiverged, match=r"5 steps in a row \(between iters 1 and 10\)"):
        Trainer(tiny(max_iters=12, log_interval=10, eval_interval=100), data, tmp_path, sink=rec).run()
    assert [w.message for w in rec.of(ev.Warning)] == [
        "iters 1 to 10: 5 steps skipped (loss or gradient norm not finite); 0 of 5 in a row at iter 10"]


def test_a_step_asks_the_host_nothing_between_log_points(data, tmp_path, monkeypatch):
    """A host sync cannot be counted portably; instead every way a tensor's value reaches Python raises
    inside a step (log points read the device after the step, in the loop)."""
    nan_forward(monkeypatch, lambda n: n == 2)  # the skip path too
    inside = {"on": False, "steps": 0}

    def guard(name):
        real = getattr(torch.Tensor, name)

        def check(self, *args, **kwargs):
            # The step's thread only: the checkpoint writer's thread reads files meanwhile (trainer.train.checkpointer).
            if inside["on"] and threading.current_thread() is threading.main_thread():
                raise AssertionError(f"Tensor.{name} called inside a training step")
            return real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, check)

    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        guard(name)
    original = Trainer._step

    def step(self, lr):
        inside["on"] = True
        try:
            return original(self, lr)
        finally:
            inside["on"] = False
            inside["steps"] += 1

    monkeypatch.setattr(Trainer, "_step", step)
    rec, _, reason = train(data, tmp_path, tiny(max_iters=8, log_interval=4, eval_interval=4))
    assert reason == "completed" and inside["steps"] == 8
    assert [(s.iter, s.skipped_steps) for s in rec.of(ev.Step) if s.log_point] == [(0, 0), (4, 1), (7, 1)]


def fake_oom(monkeypatch, on_call):
    original = Trainer._step
    calls = {"n": 0}

    def step(self, lr):
        calls["n"] += 1
        if calls["n"] == on_call:
            self.loader.next()  # half a step happened: the retry must rewind the data position
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, lr)

    monkeypatch.setattr(Trainer, "_step", step)


def test_out_of_memory_with_auto_batch_halves_the_micro_batch(data, tmp_path, monkeypatch):
    fake_oom(monkeypatch, on_call=3)
    changed = []
    rec, trainer, reason = train(data, tmp_path, tiny(max_iters=8, batch_size=4, gradient_accumulation_steps=1),
                                 auto_batch=True, on_config_change=changed.append)
    assert reason == "completed"
    assert (trainer.config.batch_size, trainer.config.gradient_accumulation_steps) == (2, 2)
    assert trainer.config.tokens_per_iter == 4 * 32
    assert changed and changed[0].batch_size == 2
    assert any("out of memory at micro-batch 4" in w.message for w in rec.of(ev.Warning))
    assert [s.iter for s in rec.of(ev.Step)] == list(range(8))


def test_out_of_memory_without_auto_batch_is_one_clear_error(data, tmp_path, monkeypatch):
    fake_oom(monkeypatch, on_call=2)
    with pytest.raises(FwtuiError, match="batch_size=2 --set gradient_accumulation_steps=2"):
        train(data, tmp_path, tiny(max_iters=8))


def test_batches_resume_exactly_and_eval_streams_are_separate(data):
    a = BatchLoader(data.train_path, block_size=32, batch_size=4, seed=1, device="cpu")
    for _ in range(5):
        a.next()
    a.prefetch()
    state = a.state()
    expected = [a.next() for _ in range(3)]
    b = BatchLoader(data.train_path, block_size=32, batch_size=4, seed=1, device="cpu")
    b.load_state(state)
    for (x1, y1), (x2, y2) in zip(expected, [b.next() for _ in range(3)]):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert torch.equal(x1[:, 1:], y1[:, :-1])  # targets are the inputs shifted by one
    other = BatchLoader(data.train_path, block_size=32, batch_size=4, seed=1, stream=1, device="cpu")
    assert not np.array_equal(other.offsets(0), a.offsets(0))


def test_signals_only_ask_for_a_stop_and_handlers_are_restored():
    controls = Controls()
    before = signal.getsignal(signal.SIGTERM)
    heard = []
    with stop_on_signals(controls, notify=heard.append):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGHUP)
    assert controls.stop_requested and controls.stop_reason == "SIGTERM received"
    assert len(heard) == 2 and "already stopping" in heard[1]
    assert signal.getsignal(signal.SIGTERM) == before


def test_disk_full_at_a_checkpoint_warns_keeps_the_old_one_and_retries(data, tmp_path, monkeypatch):
    import trainer.train.checkpoint as ck

    real = ck.check_free_space
    calls = {"n": 0}

    def full_once(directory, needed, *rest):
        calls["n"] += 1
        if calls["n"] == 2:  # the save at iter 20
            raise ck.CheckpointError(f"only 1 MB free in {directory}, a checkpoint needs about 2 MB")
        real(directory, needed, *rest)

    monkeypatch.setattr(ck, "check_free_space", full_once)
    rec, _, reason = train(data, tmp_path)
    assert reason == "completed"
    assert [c.iter for c in rec.of(ev.CheckpointSaved)] == [10, 30, 40]
    assert any("checkpoint not saved" in w.message and "retrying" in w.message for w in rec.of(ev.Warning))


def test_sampling_and_extra_evals_mid_run_leave_the_losses_unchanged(data, tmp_path):
    controls = Controls()

    def ask(step):
        if step.iter == 5:
            controls.request_sample("a", max_new_tokens=8, temperature=1.0)
            controls.request_eval()

    config = tiny(max_iters=12, dropout=0.1)
    busy, _, _ = train(data, tmp_path / "busy", config, controls=controls, on_step=ask)
    quiet, _, _ = train(data, tmp_path / "quiet", config)
    assert len(busy.of(ev.Sample)) == 1 and len(busy.of(ev.Eval)) == len(quiet.of(ev.Eval)) + 1
    assert [s.loss for s in busy.of(ev.Step)] == [s.loss for s in quiet.of(ev.Step)]
