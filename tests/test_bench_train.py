"""bench/train.py, the GPU check's headline stage, on CPU: a speed run times steps only (no evaluation, no
checkpoint, no HellaSwag, so one compile and no 1.5 GB write), prints its figures the moment they exist
(a stage killed at its timeout keeps them), and measures the Trainer's and the bare loop's peak memory apart."""

from __future__ import annotations

import sys
from pathlib import Path

from trainer.config import RunConfig

from tests.tiny_trainer_child import tiny

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import train as bench_train  # noqa: E402


def test_a_speed_run_times_steps_only_and_prints_its_headline_at_the_last_step(pattern_data, tmp_path, capsys):
    config = tiny(max_iters=6, eval_interval=2, log_interval=2, always_save_checkpoint=True)
    result = bench_train.trainer_run(config, pattern_data, tmp_path / "run", None, 2, headline="headline:")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("headline: running:") and "micro-batch 4 x 1" in out[0]
    assert out[1].startswith("headline: ") and " tok/s · " in out[1] and "MFU unknown" in out[1]
    assert result["tps"] > 0 and result["step"] > 0
    assert not (tmp_path / "run" / "ckpt.pt").exists()  # no final (nor eval) checkpoint
    assert result["trainer"].last_losses == {}  # no evaluation ran


def test_main_clears_hellaswag_never_downloads_and_prints_the_headline_before_the_rest(monkeypatch, capsys):
    import trainer.data.hellaswag as hellaswag_data

    def no_download(*args, **kwargs):
        raise AssertionError("a speed run tried to download HellaSwag")

    monkeypatch.setattr(hellaswag_data, "download", no_download)
    real_load = bench_train.load_preset

    def small_preset(name):  # cpu-tiny with HellaSwag every 2 iterations, as the GPU presets set it
        return real_load(name).replace(hellaswag_interval=2, hellaswag_limit=10)

    monkeypatch.setattr(bench_train, "load_preset", small_preset)
    code = bench_train.main(["--preset", "cpu-tiny", "--iters", "2", "--warmup", "1", "--log-interval", "1",
                             "--repeat", "1", "--no-phases", "--set", "batch_size=1", "--set", "block_size=16"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("fwtui Trainer run 1:") and "tok/s" in line)
    plan = next(i for i, line in enumerate(lines) if line.startswith("plan "))
    bare = next(i for i, line in enumerate(lines) if line.startswith("bare loop run 1:"))
    assert head < plan < bare, lines
    assert "predicted" in lines[plan]


def test_the_sweep_keeps_the_tokens_per_iteration():
    config = RunConfig(name="s", batch_size=12, gradient_accumulation_steps=40, device="cpu")
    sizes = bench_train.sweep_sizes("auto", config, type("Info", (), {"is_cuda": False, "memory_bytes": None})())
    assert sizes == [12, 24, 48, 96] and all(480 % b == 0 for b in sizes)
    assert bench_train.sweep_sizes("8,16", config, None) == [8, 16]


def test_the_sweep_runs_each_micro_batch_and_prints_each_as_measured(pattern_data, tmp_path, capsys):
    config = tiny(max_iters=4, log_interval=1, batch_size=4, gradient_accumulation_steps=2)
    args = type("Args", (), {"peak_tflops": None, "warmup": 1})()
    bench_train.batch_sweep(config, pattern_data, tmp_path, args, [4, 2])
    lines = [line for line in capsys.readouterr().out.splitlines() if "tok/s" in line]
    assert [line.split()[1] for line in lines] == ["b=4", "b=2"]
    assert "x2" in lines[0] and "x4" in lines[1]  # 8 sequences an iteration at both
