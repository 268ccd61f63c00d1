"""One precision decision (trainer.model.precision) used by the loop, the memory model, the batch finder and the
planner, and MFU held to the peak of the precision that ran. Fake devices: no GPU needed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import trainer.plan.batch_finder
import trainer.observe.hardware
import trainer.train.loop
import trainer.plan.memory
from trainer.observe import events as ev
from trainer.errors import ConfigError
from trainer.observe.hardware import DeviceInfo
from trainer.train.loop import Trainer
from trainer.plan.memory import estimate_memory
from trainer.model.precision import autocast_for, bytes_per_activation, peak_for_precision, precision_for

from tests.tiny_trainer_child import tiny

CPU = DeviceInfo("cpu", "CPU: Test Processor", 8 << 30, None, "unknown: CPUs have no peak", bf16=False)
MPS = DeviceInfo("mps", "Apple MPS", 16 << 30, None, "unknown: not in the table", bf16=True)
A100 = DeviceInfo("cuda:0", "NVIDIA A100-SXM4-80GB", 80 << 30, 312e12, "table: A100 bf16 dense 312 TFLOP/s",
                  bf16=True)
T4 = DeviceInfo("cuda:0", "Tesla T4", 16 << 30, 65e12, "--peak-tflops 65", bf16=False)
REFUSED = ConfigError

# dtype x device -> the precision that runs (or the error). auto: bf16 where the card has it, fp16 (with loss
# scaling) on a CUDA card without, fp32 on CPU and MPS; an explicit dtype is kept, but bf16 asked of a CUDA
# card without it is refused before the first step.
TABLE = {
    ("auto", "cpu"): "float32", ("bfloat16", "cpu"): "bfloat16", ("float16", "cpu"): "float16",
    ("float32", "cpu"): "float32",
    ("auto", "mps"): "float32", ("bfloat16", "mps"): "bfloat16", ("float16", "mps"): "float16",
    ("float32", "mps"): "float32",
    ("auto", "a100"): "bfloat16", ("bfloat16", "a100"): "bfloat16", ("float16", "a100"): "float16",
    ("float32", "a100"): "float32",
    ("auto", "t4"): "float16", ("bfloat16", "t4"): REFUSED, ("float16", "t4"): "float16",
    ("float32", "t4"): "float32",
}
DEVICES = {"cpu": CPU, "mps": MPS, "a100": A100, "t4": T4}


def outcome(call):
    try:
        return call()
    except ConfigError:
        return REFUSED


@pytest.mark.parametrize(("dtype", "device"), sorted(TABLE))
def test_the_precision_table(dtype, device):
    assert outcome(lambda: precision_for(dtype, DEVICES[device])) == TABLE[dtype, device]


@pytest.mark.parametrize(("dtype", "device"), sorted(TABLE))
def test_memory_model_and_batch_finder_plan_the_loops_precision(dtype, device, monkeypatch):
    info = DEVICES[device]
    config = tiny(dtype=dtype)
    expected = TABLE[dtype, device]
    memory = outcome(lambda: estimate_memory(config, on_cuda=info.is_cuda, bf16_supported=info.bf16).precision)
    assert memory == expected
    # The batch finder asks the detected device; here the fake one.
    monkeypatch.setattr(trainer.observe.hardware, "detect_device", lambda requested="auto", peak=None: info)
    assert outcome(lambda: trainer.plan.batch_finder.step_precision(config, info.device)) == expected


def test_every_module_calls_the_one_decision():
    # Nobody keeps a copy of its own: the modules hold trainer.model.precision's very functions.
    from trainer.plan import planner as plan
    from trainer.model import precision

    assert trainer.train.loop.precision_for is precision.precision_for
    assert trainer.plan.batch_finder.precision_for is precision.precision_for
    assert trainer.plan.memory.resolve_precision is precision.resolve_precision
    assert plan.resolve_precision is precision.resolve_precision
    assert precision.precision_for.__module__ == "trainer.model.precision"
    for module in (trainer.train.loop, trainer.plan.memory, trainer.plan.batch_finder, plan):
        for name in ("resolve_precision", "precision_for"):  # the old copies' names: gone or the shared one
            assert getattr(module, name, getattr(precision, name)) is getattr(precision, name), module.__name__


@pytest.mark.parametrize(("dtype", "expected"), [("auto", "float32"), ("bfloat16", "bfloat16")])
def test_the_loop_runs_the_decided_precision(dtype, expected, pattern_data, tmp_path):
    events = []
    run = Trainer(tiny(dtype=dtype, max_iters=2, eval_interval=2, lr_decay_iters=2, warmup_iters=1), pattern_data,
                  tmp_path, sink=events.append, device_info=CPU)
    run.run()
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    assert run.precision == started.precision == expected == precision_for(dtype, CPU)
    assert isinstance(run.autocast, torch.autocast) == (expected != "float32")


def test_memory_activations_use_the_precisions_bytes():
    config = tiny(n_layer=2, block_size=64, batch_size=4)
    fp32 = estimate_memory(config.replace(dtype="float32"), on_cuda=False)
    bf16 = estimate_memory(config.replace(dtype="bfloat16"), on_cuda=False)
    assert bytes_per_activation("float32") == 4 and bytes_per_activation("bfloat16") == 2
    assert fp32.breakdown["activations"] == 2 * bf16.breakdown["activations"]  # same tensors, twice the bytes
    fp16 = estimate_memory(config, on_cuda=True, bf16_supported=False)  # auto on a T4
    assert fp16.precision == "float16" and fp16.flash_attention


def test_autocast_for_each_precision():
    assert not isinstance(autocast_for("float32", "cuda:0"), torch.autocast)
    with autocast_for("bfloat16", "cpu"):
        out = torch.ones(2, 2) @ torch.ones(2, 2)
    assert out.dtype == torch.bfloat16


# --- MFU against the peak of the precision that ran ------------------------------------------------------------

def test_peak_for_each_precision():
    table = (989e12, "table: H100 SXM bf16 dense 989 TFLOP/s")
    assert peak_for_precision(*table, "bfloat16", True) == table
    assert peak_for_precision(*table, "float16", True) == table  # the same tensor-core rate
    peak, source = peak_for_precision(*table, "float32", True)
    assert peak == pytest.approx(494.5e12)
    assert source == "TF32 = 0.5 × bf16 peak; table: H100 SXM bf16 dense 989 TFLOP/s"
    assert peak_for_precision(None, "unknown: CPUs have no peak", "float32", False) == (None,
                                                                                         "unknown: CPUs have no peak")
    assert peak_for_precision(100e12, "--peak-tflops 100", "float32", True) == (100e12, "--peak-tflops 100")


@dataclass(frozen=True)
class CudaOnTheCpu:
    """A DeviceInfo that says CUDA (an H100) while its tensors live on the CPU, so the loop's CUDA-only
    decisions (precision, peak, MFU) run here without a GPU."""

    device: str = "cpu"
    name: str = "NVIDIA H100 80GB HBM3"
    memory_bytes: int = 80 << 30
    peak_flops: float = 989e12
    peak_source: str = "table: H100 SXM bf16 dense 989 TFLOP/s"
    bf16: bool = True
    is_cuda: bool = True


@pytest.mark.parametrize(("dtype", "peak", "label"), [
    ("float32", 494.5e12, "TF32 = 0.5 × bf16 peak; table: H100 SXM"),
    ("bfloat16", 989e12, "table: H100 SXM"),
])
def test_run_started_and_steps_use_the_peak_of_the_precision(dtype, peak, label, pattern_data, tmp_path,
                                                           monkeypatch):
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)  # the only CUDA call setup makes
    events = []
    run = Trainer(tiny(dtype=dtype, max_iters=3, eval_interval=3, lr_decay_iters=3, warmup_iters=1), pattern_data,
                  tmp_path, sink=events.append, device_info=CudaOnTheCpu())
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.get_float32_matmul_precision())
    try:
        run.run()
    finally:  # setup turned TF32 on for the fake card; leave the process as it was for the other tests
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[:2]
        torch.set_float32_matmul_precision(before[2])
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    assert started.precision == dtype
    assert started.peak_flops == pytest.approx(peak) and started.peak_flops_source.startswith(label)
    steps = [e for e in events if isinstance(e, ev.Step)]
    assert steps
    for step in steps:
        assert step.mfu == pytest.approx(step.tokens_per_sec * started.flops_per_token / peak)


def test_headless_and_dashboard_text_read_well():
    from fwtui.headless import HeadlessPrinter

    lines = []

    class Out:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    peak, source = peak_for_precision(989e12, "table: H100 SXM bf16 dense 989 TFLOP/s", "float32", True)
    printer = HeadlessPrinter(Out())
    printer(ev.RunStarted(run_dir="RUN", config={"name": "x"}, params=1, params_with_embeddings=1, device="cuda:0",
                          device_name="NVIDIA H100 80GB HBM3", device_memory_bytes=80 << 30, peak_flops=peak,
                          peak_flops_source=source, flops_per_token=1, tokens_per_iter=1, dataset_tokens=1,
                          start_iter=0, max_iters=1, precision="float32", compiled=True))
    text = "".join(lines)
    assert "float32" in text and "peak 494.5 TFLOP/s (TF32 = 0.5 × bf16 peak; table: H100 SXM" in text
    assert "((" not in text and "))" not in text
