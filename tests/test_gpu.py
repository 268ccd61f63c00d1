"""The engine on a CUDA device: bf16 and fp16 runs, fused AdamW, torch.compile (static shapes, and in a
worker thread as the app compiles), bitwise resume, sampling mid-run, a real out-of-memory error and
--auto-batch recovering from it, the batch finder's probe under a memory cap, and a modern run whose Muon
steps never synchronise with the host.

Every test is marked `gpu` and skips without CUDA, so the suite never depends on a GPU:
`python -m pytest -m gpu tests/test_gpu.py` runs them on the GPU machine (bench/gpu_check.sh does).
They drive the real Trainer on the pattern dataset of tests/conftest.py (ids below 256), imports only
trainer/ (the GPU machine has no textual), and keep models tiny so the file runs in about a minute.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
import torch

from trainer.observe import events as ev
from trainer.plan.batch_finder import find_max_batch, make_try_step
from trainer.train.oom import is_out_of_memory
from trainer.train.controls import Controls
from trainer.errors import FwtuiError
from trainer.train.optimizers import MuonWithAdamW

from tests.engine_helpers import Recorder, train
from tests.tiny_trainer_child import tiny

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CAP_BYTES = 4 * 2**30  # the memory cap of the out-of-memory and probe tests: 4 GiB, whatever the card


def gpu(**changes):
    """tiny() on CUDA: vocabulary 256, 1 layer, n_embd 32, eager unless a test compiles."""
    return tiny(device="cuda", **changes)


def warnings_of(rec: Recorder) -> list[str]:
    return [w.message for w in rec.of(ev.Warning)]


@contextmanager
def memory_cap(cap_bytes: int):
    """Let the caching allocator hand out at most `cap_bytes` (a smaller card on this one), then lift it."""
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_bytes / total), 0)
    try:
        yield
    finally:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(1.0, 0)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_16bit_run_trains_with_fused_adamw(pattern_data, tmp_path, dtype):
    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this card has no bfloat16")
    rec, trainer, reason = train(pattern_data, tmp_path, gpu(dtype=dtype))
    assert reason == "completed", warnings_of(rec)
    started = rec.of(ev.RunStarted)[0]
    assert started.precision == dtype and started.device.startswith("cuda")
    assert trainer.optimizer.defaults["fused"] is True
    assert trainer.scaler.is_enabled() is (dtype == "float16")  # loss scaling only for fp16
    steps = rec.of(ev.Step)
    assert all(s.mem_allocated_bytes and s.mem_allocated_bytes > 0 for s in steps)  # CUDA allocator figures
    assert steps[-1].loss < steps[0].loss - 1.0, [s.loss for s in steps]
    assert not any("not finite" in w for w in warnings_of(rec))


def test_auto_dtype_on_cuda_is_16_bit_and_mfu_is_measured(pattern_data, tmp_path):
    rec, _, _ = train(pattern_data, tmp_path, gpu(max_iters=5), peak_tflops=100.0)
    started = rec.of(ev.RunStarted)[0]
    assert started.precision == ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    assert all(s.mfu is not None and 0 < s.mfu < 1 for s in rec.of(ev.Step))


def test_fp32_on_cuda_is_held_to_the_tf32_peak(pattern_data, tmp_path):
    rec, _, _ = train(pattern_data, tmp_path, gpu(dtype="float32", max_iters=3))
    started = rec.of(ev.RunStarted)[0]
    assert started.precision == "float32"
    assert started.peak_flops is None or "TF32" in started.peak_flops_source


def test_compiled_run_keeps_static_shapes_and_never_falls_back(pattern_data, tmp_path):
    rec, trainer, reason = train(pattern_data, tmp_path, gpu(compile=True, max_iters=20, eval_interval=10))
    assert reason == "completed"
    assert rec.of(ev.RunStarted)[0].compiled is True and trainer.compiled is True
    assert not any("torch.compile failed" in w for w in warnings_of(rec)), warnings_of(rec)
    steps = rec.of(ev.Step)
    assert steps[-1].loss < steps[0].loss - 1.0


def test_compile_in_a_worker_thread_as_the_app_does(pattern_data, tmp_path):
    # The app's engine worker is a thread: dynamo and inductor must compile off the main thread too. Dynamo
    # keeps compiled code across model instances, so without a reset this thread would replay the graphs the
    # test before compiled on the main thread; the counter proves the thread compiled its own.
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    box: dict = {}

    def work():
        try:
            box["result"] = train(pattern_data, tmp_path, gpu(compile=True, max_iters=10, eval_interval=5))
            box["frames"] = counters["stats"]["unique_graphs"]
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            box["error"] = err

    thread = threading.Thread(target=work, name="engine")
    thread.start()
    thread.join(timeout=300)
    assert not thread.is_alive(), "the compiled run in a worker thread did not finish in 300 s"
    assert "error" not in box, repr(box.get("error"))
    rec, trainer, reason = box["result"]
    assert reason == "completed" and trainer.compiled is True, warnings_of(rec)
    assert box["frames"] >= 2, box["frames"]  # the step's graph and the evaluation's, compiled in the thread


def test_batches_reach_the_gpu_from_contiguous_pinned_host_buffers(pattern_data):
    from trainer.data.batches import host_batch
    import numpy as np

    windows = np.arange(4 * 33, dtype=np.uint16).reshape(4, 33)
    x, y = host_batch(windows, pinned=True)
    assert x.is_pinned() and y.is_pinned() and x.is_contiguous() and y.is_contiguous()
    gx = x.to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    assert torch.equal(gx.cpu(), torch.from_numpy(windows[:, :-1].astype(np.int64)))


def test_resume_on_the_gpu_is_bitwise_equal(pattern_data, tmp_path):
    config = gpu(dropout=0.1)
    straight, _, _ = train(pattern_data, tmp_path / "straight", config)
    again, _, _ = train(pattern_data, tmp_path / "again", config)
    losses = lambda rec: {s.iter: s.loss for s in rec.of(ev.Step)}  # noqa: E731
    if losses(straight) != losses(again):
        pytest.fail("two uninterrupted runs of the same config differ on this GPU: its kernels are not "
                    "deterministic here, so no resume can be bitwise equal")
    controls = Controls()

    def stop_at_17(step):
        if step.iter == 17:
            controls.stop("test")

    _, _, reason = train(pattern_data, tmp_path / "split", config, controls=controls, on_step=stop_at_17)
    assert reason == "stopped"
    second, _, reason = train(pattern_data, tmp_path / "split", config, resume=True)
    assert reason == "completed"
    assert losses(second) == {i: loss for i, loss in losses(straight).items() if i >= 18}
    assert second.of(ev.Eval)[-1].val_loss == straight.of(ev.Eval)[-1].val_loss


def test_sampling_mid_run_on_the_gpu_leaves_the_losses_unchanged(pattern_data, tmp_path):
    controls = Controls()

    def ask(step):
        if step.iter == 5:
            controls.request_sample("a", max_new_tokens=16, temperature=1.0)

    config = gpu(max_iters=12, dropout=0.1)
    busy, _, _ = train(pattern_data, tmp_path / "busy", config, controls=controls, on_step=ask)
    quiet, _, _ = train(pattern_data, tmp_path / "quiet", config)
    samples = busy.of(ev.Sample)
    assert len(samples) == 1, warnings_of(busy)
    assert samples[0].iter == 6 and samples[0].seconds > 0
    assert [s.loss for s in busy.of(ev.Step)] == [s.loss for s in quiet.of(ev.Step)]


def _too_big(**changes):
    """A micro-batch whose logits alone (1024 × 256 × 50304 values: 26 GB in bf16) cannot fit under the cap."""
    return gpu(vocab_size=50304, block_size=256, batch_size=1024, max_iters=2, eval_interval=100,
               eval_iters=1, **changes)


def test_a_real_out_of_memory_is_one_clear_message(pattern_data, tmp_path):
    with memory_cap(CAP_BYTES), pytest.raises(FwtuiError) as info:
        train(pattern_data, tmp_path, _too_big())
    message = str(info.value)
    assert "\n" not in message
    assert "out of memory on" in message and "micro-batch 1024" in message and "--auto-batch" in message


def test_auto_batch_recovers_from_a_real_out_of_memory(pattern_data, tmp_path):
    changed = []
    with memory_cap(CAP_BYTES):
        rec, trainer, reason = train(pattern_data, tmp_path, _too_big(), auto_batch=True,
                                     on_config_change=changed.append)
    assert reason == "completed"
    final = trainer.config
    assert final.batch_size < 1024
    assert final.batch_size * final.gradient_accumulation_steps == 1024  # same tokens per iteration
    assert changed and changed[-1].batch_size == final.batch_size
    assert any("out of memory at micro-batch 1024" in w for w in warnings_of(rec))


def test_the_probe_finds_the_largest_micro_batch_under_a_cap():
    config = gpu(vocab_size=50304, block_size=256, n_layer=2, n_embd=64, compile=False)
    with memory_cap(CAP_BYTES):
        search = find_max_batch(config, device="cuda", limit=4096)
        try_step = make_try_step(config, "cuda", compiled=False)
        try_step(search.largest_fitting)  # the answer fits...
        with pytest.raises(Exception) as info:
            try_step(search.largest_fitting + 1)  # ...and one more sequence does not
        assert is_out_of_memory(info.value), repr(info.value)
    assert not search.hit_limit
    assert search.batch_size == int(search.largest_fitting * 0.9) or search.batch_size == 1
    assert all(ok == (b <= search.largest_fitting) for b, ok in search.tried), search.tried


def test_a_modern_run_trains_in_bf16_and_its_muon_steps_never_sync(pattern_data, tmp_path, monkeypatch):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this card has no bfloat16")
    real_step = MuonWithAdamW.step
    steps = {"n": 0}

    def step_without_sync(self, closure=None):
        torch.cuda.set_sync_debug_mode("error")  # a synchronising CUDA call inside raises
        try:
            return real_step(self, closure)
        finally:
            torch.cuda.set_sync_debug_mode("default")
            steps["n"] += 1

    monkeypatch.setattr(MuonWithAdamW, "step", step_without_sync)
    rec, trainer, reason = train(pattern_data, tmp_path, gpu(recipe="modern", muon_lr=0.02, dtype="bfloat16"))
    assert reason == "completed", warnings_of(rec)
    assert isinstance(trainer.optimizer, MuonWithAdamW) and steps["n"] == trainer.config.max_iters
    assert rec.of(ev.RunStarted)[0].precision == "bfloat16"
    losses = [s.loss for s in rec.of(ev.Step)]
    assert losses[-1] < losses[0] - 1.0, losses
