"""CPU checks that catch GPU regressions before a card is lent: the training step of both recipes compiles to
one graph (fullgraph: no break) and never recompiles across learning-rate changes, evaluations (a padded last
batch included) and train/eval switching; a compiler failing at the first call falls back to eager with one
warning; compile_mode is a key that reaches config.toml; out-of-memory recovery frees the failed step after
leaving the except block and resets the GradScaler; bf16 autocast steps of both recipes train; per-rank
dropout seeds. The compiles use dynamo's `aot_eager` back end (no C compiler, seconds on a tiny model)."""

from __future__ import annotations

import functools
import sys
import weakref

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

import trainer.train.compiling as compiling
import trainer.train.loop as loop
import trainer.train.recovery as recovery
from trainer.config import RunConfig, apply_overrides, config_to_toml
from trainer.errors import ConfigError
from trainer.observe import events as ev
from trainer.train.distributed import Dist
from trainer.train.loop import Trainer

from tests.engine_helpers import train
from tests.tiny_trainer_child import tiny

RECIPES = {"nanogpt": {}, "modern": {"recipe": "modern", "muon_lr": 0.02}}


def warnings_of(rec) -> list[str]:
    return [w.message for w in rec.of(ev.Warning)]


@pytest.fixture
def compiled_with(monkeypatch):
    """torch.compile in the Trainer made to use `backend` (and fullgraph); dynamo's caches emptied first and
    after, so each test compiles for itself (dynamo keeps compiled code across model instances)."""
    real = torch.compile

    def use(backend, fullgraph=True):
        torch._dynamo.reset()
        monkeypatch.setattr(compiling.torch, "compile",
                            functools.partial(real, backend=backend, fullgraph=fullgraph), raising=True)

    yield use
    torch._dynamo.reset()


@pytest.mark.slow  # dynamo traces the forward twice (train, eval): ~10-20 s a recipe on a quiet 2-core VM
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_the_step_compiles_to_one_graph_and_never_recompiles(pattern_data, tmp_path, compiled_with, recipe):
    counter = CompileCounterWithBackend("aot_eager")
    compiled_with(counter)
    # 6 steps with the learning rate warming up and decaying, evaluations at 0, 3 and the end; the val split
    # has 15 windows of 129 tokens, so batches of 4 leave a short last one (padded: the same shape).
    config = tiny(max_iters=6, warmup_iters=2, lr_decay_iters=6, eval_interval=3, eval_iters=4, block_size=128,
                  compile=True, dropout=0.1, **RECIPES[recipe])
    rec, trainer, reason = train(pattern_data, tmp_path, config)
    assert reason == "completed" and trainer.compiled, warnings_of(rec)
    assert not warnings_of(rec)  # fullgraph: a graph break would have raised and fallen back, with a warning
    assert len(rec.of(ev.Eval)) == 3 and len({s.lr for s in rec.of(ev.Step)}) == 6
    assert [n for _, _, n in trainer.evaluator.batches("val")] == [4, 4, 4, 3]
    # One graph for the training step, one for evaluation (no grad, eval mode): nothing recompiled after.
    assert counter.frame_count == 2, counter.frame_count


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_bf16_autocast_steps_train_on_cpu(pattern_data, tmp_path, recipe):
    rec, trainer, reason = train(pattern_data, tmp_path, tiny(max_iters=8, eval_interval=8, dtype="bfloat16",
                                                             **RECIPES[recipe]))
    assert reason == "completed" and rec.of(ev.RunStarted)[0].precision == "bfloat16"
    losses = [s.loss for s in rec.of(ev.Step)]
    assert all(loss == loss for loss in losses) and losses[-1] < losses[0] - 0.5, losses
    assert not any("not finite" in w for w in warnings_of(rec))


def test_a_compiler_failing_at_the_first_call_falls_back_to_eager_with_one_warning(pattern_data, tmp_path,
                                                                                  compiled_with):
    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("this card's compiler is broken")

    compiled_with(broken_backend, fullgraph=False)
    rec, trainer, reason = train(pattern_data, tmp_path, tiny(max_iters=6, compile=True))
    assert reason == "completed"
    assert rec.of(ev.RunStarted)[0].compiled is True and trainer.compiled is False
    failed = [w for w in warnings_of(rec) if "torch.compile failed" in w]
    assert len(failed) == 1 and "continuing eager" in failed[0], warnings_of(rec)
    assert "RuntimeError: this card's compiler is broken" in failed[0]  # the cause, not dynamo's wrapper alone
    assert [s.iter for s in rec.of(ev.Step)] == list(range(6))


def test_compile_mode_is_a_key_checked_and_recorded():
    config = apply_overrides(RunConfig(), ["compile_mode=max-autotune-no-cudagraphs"])
    assert 'compile_mode = "max-autotune-no-cudagraphs"' in config_to_toml(config)
    assert 'compile_mode = "default"' in config_to_toml(RunConfig())
    with pytest.raises(ConfigError, match="compile_mode") as info:
        apply_overrides(RunConfig(), ["compile_mode=fastest"])
    assert "\n" not in str(info.value)


def test_compile_mode_reaches_torch_compile(pattern_data, tmp_path, monkeypatch):
    modes = []

    def fake_compile(model, mode=None, **kwargs):
        modes.append(mode)
        return model

    monkeypatch.setattr(compiling.torch, "compile", fake_compile)
    train(pattern_data, tmp_path / "a", tiny(max_iters=1, compile=True, compile_mode="max-autotune-no-cudagraphs"))
    train(pattern_data, tmp_path / "b", tiny(max_iters=1, compile=True))
    assert modes == ["max-autotune-no-cudagraphs", None]  # None: torch's default mode


def test_out_of_memory_frees_the_failed_step_after_leaving_the_except_block(pattern_data, tmp_path, monkeypatch):
    original, calls, held = Trainer._step, {"n": 0}, {}

    def step(self, lr):
        calls["n"] += 1
        if calls["n"] == 2:
            activations = torch.ones(1024)  # what the failed step's frame holds (on a card: gigabytes)
            held["ref"] = weakref.ref(activations)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, lr)

    seen = []
    real_free = recovery.free_device_memory

    def free():
        seen.append((sys.exc_info()[0], held["ref"]() is None))  # still handling? the tensors gone?
        real_free()

    monkeypatch.setattr(Trainer, "_step", step)
    monkeypatch.setattr(recovery, "free_device_memory", free)
    rec, trainer, reason = train(pattern_data, tmp_path, tiny(max_iters=4, batch_size=4), auto_batch=True)
    assert reason == "completed" and trainer.config.batch_size == 2
    assert seen == [(None, True)]


def test_an_oom_after_unscale_leaves_the_grad_scaler_ready_for_the_retry(pattern_data, tmp_path, monkeypatch):
    # fp16's GradScaler, on CPU: an out-of-memory error in clipping comes after scaler.unscale_.
    real_setup, real_clip, calls = Trainer.setup, torch.nn.utils.clip_grad_norm_, {"n": 0}

    def setup(self):
        real_setup(self)
        self.scaler = torch.amp.GradScaler("cpu", enabled=True)

    def clip(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_clip(*args, **kwargs)

    monkeypatch.setattr(Trainer, "setup", setup)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    rec, trainer, reason = train(pattern_data, tmp_path, tiny(max_iters=5, batch_size=4), auto_batch=True)
    assert reason == "completed", warnings_of(rec)
    assert [s.iter for s in rec.of(ev.Step)] == list(range(5))


def test_each_rank_draws_its_own_dropout_stream():
    one = Dist()
    assert one.dropout_seed(1337, 0) is None  # one process: the seed it built the model with
    ranks = [Dist(rank=r, world_size=4) for r in range(4)]
    seeds = {(r.rank, it): r.dropout_seed(1337, it) for r in ranks for it in (0, 1, 2, 500)}
    assert len(set(seeds.values())) == len(seeds)  # distinct for every rank and resume point
    assert seeds[(0, 0)] == 1337 and seeds[(3, 0)] == 1340  # nanoGPT's 1337 + rank


def test_ranks_agree_on_controls_at_log_points_not_every_step(pattern_data, tmp_path, monkeypatch):
    # The agreement's all_gather is read on the host: a device wait. Several ranks hold SharedControls; here
    # one process stands in for them with Controls that count the agreements.
    from trainer.train.controls import Controls

    class CountingControls(Controls):
        def __init__(self):
            super().__init__()
            self.agreed_at: list[int] = []
            self.positions: list[int] = []

        def sync(self, position):
            self.agreed_at.append(position)

    monkeypatch.setattr(loop, "SharedControls", CountingControls)
    controls = CountingControls()
    _, _, reason = train(pattern_data, tmp_path, tiny(max_iters=10, log_interval=5, eval_interval=100),
                         controls=controls)
    assert reason == "completed"
    assert controls.agreed_at == [0, 5, 10]  # boundaries 0, 5 and 10 (positions: one batch a step)


def test_ddp_over_the_compiled_model_splits_the_graph_at_its_buckets(tmp_path, compiled_with):
    # The review feared DDP over the compiled model leaves one backward graph, its all-reduce after it. The
    # order is torch's advice (compile the inner module, then wrap), and dynamo's DDPOptimizer, seeing the
    # active DDP module, splits the graph at DDP's 25 MB buckets, so each bucket's all-reduce can start while
    # the rest of the backward runs. One gloo process stands in for the ranks.
    import torch.distributed as dist

    from trainer.model.gpt import GPT, ModelArgs

    counter = CompileCounterWithBackend("aot_eager")
    compiled_with(counter, fullgraph=False)  # DDPOptimizer splits the graph: fullgraph would refuse that
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = GPT(ModelArgs(n_layer=2, n_head=2, n_embd=256, block_size=16, vocab_size=50304))  # 51 MB of wte
        compiled, ok = compiling.compile_model(model, wanted=True, mode="default", warn=print)
        wrapped = Dist(rank=0, world_size=2, device="cpu").wrap(compiled)  # as Trainer.setup: compile, then DDP
        assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel) and ok
        x = torch.randint(0, 50257, (2, 16))
        _, loss = wrapped(x, torch.roll(x, -1, 1))
        loss.backward()
    finally:
        dist.destroy_process_group()
    assert counter.frame_count >= 2, counter.frame_count  # one graph a bucket group, not one for the model


@pytest.mark.parametrize(("given", "expected"), [
    ({}, "expandable_segments:True"),
    ({"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128"}, "max_split_size_mb:128"),  # the user's, kept
    ({"PYTORCH_ALLOC_CONF": "expandable_segments:False"}, None),  # torch's newer name: left alone
])
def test_the_engine_sets_expandable_segments_before_cuda_unless_the_user_did(given, expected):
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")}
    code = "import os, trainer; print(os.environ.get('PYTORCH_CUDA_ALLOC_CONF'))"
    out = subprocess.run([sys.executable, "-c", code], env={**env, **given}, capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == str(expected)
