"""Refusing early, in words the user can act on (issue 23, points 9 to 11): a run the memory plan says cannot
fit, the CPU allocator's failure, folders that refuse, values argparse took but the engine cannot use, and a
resume asked to become another run. Each was an "internal error", a traceback or silence before.

Engine checks run on the pattern data (tests/conftest.py) with a tiny model; command-line checks call
fwtui.cli.main in-process (argparse errors exit 2 with one usage line)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fwtui.cli import main as fwtui
from tests.test_resume_schedule import Recorder, tiny
from trainer.errors import ConfigError, DataError, PathError, describe_os_error
from trainer.observe import events as ev
from trainer.observe.hardware import DeviceInfo
from trainer.plan.fit import check_fit
from trainer.plan.memory import estimate_memory
from trainer.runs import launch
from trainer.runs.launch import RunRequest, run_training
from trainer.train.oom import is_out_of_memory

# What torch's CPU allocator raised for `--set batch_size=4096` on cpu-tiny (52 GB asked of a 25 GB machine).
CPU_ALLOCATOR_ERROR = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 52103675904 bytes. Error code 12 (Cannot allocate memory)")


def cpu_with(memory_bytes: int) -> DeviceInfo:
    return DeviceInfo("cpu", "a small CPU", memory_bytes, None, "unknown", bf16=False)


# --- 9: the memory plan, before the first step ---------------------------------------------------------------

def test_a_micro_batch_the_plan_says_cannot_fit_is_warned_about_with_the_flags_that_fit():
    config = tiny(batch_size=64)
    need = estimate_memory(config, on_cuda=False).total_bytes
    verdict = check_fit(config, device_name="a small CPU", memory_bytes=need // 4, on_cuda=False)
    assert verdict.config is config  # without --auto-batch nothing changes by itself
    [warning] = verdict.warnings
    assert "micro-batch 64 needs" in warning and "expect an out-of-memory error" in warning
    assert "--set batch_size=" in warning and "--auto-batch" in warning


def test_auto_batch_starts_at_the_largest_micro_batch_the_plan_fits_with_the_same_tokens_per_iteration():
    config = tiny(batch_size=64, gradient_accumulation_steps=1)
    need = estimate_memory(config, on_cuda=False).total_bytes
    verdict = check_fit(config, device_name="a small CPU", memory_bytes=need // 4, on_cuda=False, auto_batch=True)
    smaller = verdict.config
    assert smaller.batch_size < 64
    assert estimate_memory(smaller, on_cuda=False).total_bytes <= need // 4
    assert abs(smaller.tokens_per_iter - config.tokens_per_iter) <= smaller.batch_size * smaller.block_size
    assert "--auto-batch starts at batch_size" in verdict.warnings[0]


def test_a_model_whose_state_alone_exceeds_the_memory_is_refused_before_anything_is_built():
    config = tiny(n_layer=48, n_embd=1024)  # ~600M parameters x 16 bytes: ~10 GB of weights, gradients, AdamW
    with pytest.raises(ConfigError, match="the model cannot fit: its weights, gradients and optimizer state"):
        check_fit(config, device_name="a small CPU", memory_bytes=2 * 10**9, on_cuda=False)


def test_a_run_that_fits_is_left_alone():
    config = tiny()
    assert check_fit(config, device_name="cpu", memory_bytes=10**12, on_cuda=False).config is config
    assert check_fit(config, device_name="cpu", memory_bytes=None, on_cuda=False).warnings == []


def test_the_run_warns_before_its_first_step_and_auto_batch_trains_at_the_fitted_micro_batch(
        pattern_data, tmp_path, monkeypatch):
    config = tiny(batch_size=8, max_iters=1, eval_interval=1)
    small = estimate_memory(config.replace(batch_size=2), on_cuda=False).total_bytes  # fits 2, not 8
    monkeypatch.setattr(launch, "detect_device", lambda device, peak=None: cpu_with(small))
    rec = Recorder()
    run_training(RunRequest(config, pattern_data.dir, out=tmp_path / "plain"), rec.append)
    first_step = next(i for i, e in enumerate(rec) if isinstance(e, ev.Step))
    warned = [i for i, e in enumerate(rec) if isinstance(e, ev.Warning) and "micro-batch 8 needs" in e.message]
    assert warned and warned[0] < first_step
    rec = Recorder()
    run_training(RunRequest(config, pattern_data.dir, out=tmp_path / "auto", auto_batch=True), rec.append)
    [started] = rec.of(ev.RunStarted)
    assert started.config["batch_size"] == 2 and started.config["gradient_accumulation_steps"] == 4
    assert "batch_size = 2" in (tmp_path / "auto" / "config.toml").read_text()  # a resume keeps it


def test_the_cpu_allocators_failure_counts_as_out_of_memory():
    assert is_out_of_memory(RuntimeError(CPU_ALLOCATOR_ERROR))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def test_the_cpu_allocators_failure_in_a_step_is_the_out_of_memory_line(pattern_data, tmp_path, monkeypatch):
    from trainer.train.loop import Trainer

    def no_memory(self, lr):
        raise RuntimeError(CPU_ALLOCATOR_ERROR)

    monkeypatch.setattr(Trainer, "_step", no_memory)
    with pytest.raises(Exception) as caught:
        run_training(RunRequest(tiny(max_iters=2), pattern_data.dir, out=tmp_path / "run"), lambda e: None)
    assert type(caught.value).__name__ == "FwtuiError"
    assert str(caught.value).startswith("out of memory on") and "micro-batch 2" in str(caught.value)


# --- 10: errors with the right cause -------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "words"), [
    (errno.EACCES, "permission denied"), (errno.EPERM, "not permitted"), (errno.EEXIST, "a file is in the way"),
    (errno.ENAMETOOLONG, "the name is too long"), (errno.EROFS, "read-only"), (errno.ENOTDIR, "is a file"),
])
def test_each_file_system_refusal_is_one_line_with_the_path_the_cause_and_the_setting(code, words):
    line = describe_os_error(OSError(code, os.strerror(code), "/runs/x"))
    assert line.startswith("/runs/x: ") and words in line and "--out" in line
    cached = describe_os_error(OSError(code, os.strerror(code), "/c/fwtui/data/ab"), cache_dir="/c/fwtui/data")
    assert "FWTUI_CACHE_DIR" in cached


def test_an_out_folder_in_the_way_or_too_long_is_one_line_and_not_an_internal_error(pattern_data, tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    for out in (tmp_path / "afile", tmp_path / "afile" / "run", tmp_path / ("x" * 300)):
        with pytest.raises(PathError):
            run_training(RunRequest(tiny(max_iters=1), pattern_data.dir, out=out), lambda e: None)
    code = fwtui(["train", "--preset", "cpu-tiny", "--data", str(pattern_data.dir), "--out", str(tmp_path / "afile")])
    err = capsys.readouterr().err
    assert code == 2 and "a file is in the way" in err and "internal error" not in err
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_data_cache_that_cannot_be_made_names_fwtui_cache_dir(tiny_parquet, tmp_path, monkeypatch, capsys):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("FWTUI_CACHE_DIR", str(tmp_path / "afile" / "cache"))
    assert fwtui(["prepare", str(tiny_parquet)]) == 2
    err = capsys.readouterr().err
    assert "FWTUI_CACHE_DIR" in err and "internal error" not in err


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to read the folder as another account")
def test_an_unreadable_folder_says_permission_denied_not_no_parquet_files(tiny_parquet):
    from trainer.data.parquet_source import resolve_paths

    top = Path(tempfile.mkdtemp(prefix="fwtui-unreadable-"))  # not under tmp_path: its parents are root-only
    try:
        top.chmod(0o755)
        folder = top / "shards"
        folder.mkdir()
        (folder / "a.parquet").write_bytes(tiny_parquet.read_bytes())
        folder.chmod(0o000)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child drops to `nobody` when root (root reads any folder), then asks
            os.close(read)
            try:
                if os.getuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                resolve_paths([folder])
                message = "no error"
            except DataError as err:
                message = str(err)
            except BaseException as err:  # noqa: BLE001 - reported to the parent
                message = f"{type(err).__name__}: {err}"
            os.write(write, message.encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as f:
            message = f.read()
        os.waitpid(pid, 0)
    finally:
        (top / "shards").chmod(0o755)
        import shutil
        shutil.rmtree(top)
    assert "cannot be read (permission denied)" in message, message


def test_invalid_seeds_are_refused_before_any_file_is_written(pattern_data, tmp_path, capsys):
    for seed in ("-1", str(10**23)):
        out = tmp_path / f"seed{seed[:3]}"
        code = fwtui(["train", "--preset", "cpu-tiny", "--data", str(pattern_data.dir), "--out", str(out),
                      "--set", f"seed={seed}"])
        assert code == 2 and "seed = " in capsys.readouterr().err and not out.exists()


def test_a_device_this_machine_lacks_is_refused_before_any_file_is_written(pattern_data, tmp_path, capsys):
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    out = tmp_path / "mps"
    code = fwtui(["train", "--preset", "cpu-tiny", "--data", str(pattern_data.dir), "--out", str(out),
                  "--set", "device=mps"])
    err = capsys.readouterr().err
    assert code == 2 and "no Apple GPU (MPS)" in err and "internal error" not in err and not out.exists()


def test_view_of_a_device_file_is_refused_instead_of_reading_forever(capsys):
    assert fwtui(["view", "/dev/zero", "--summary"]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_a_token_id_past_gpt2s_vocabulary_is_one_line_not_an_index_error(tmp_path):
    from tests.conftest import write_pattern_dataset
    from trainer.data.dataset import open_prepared

    data = write_pattern_dataset(tmp_path)
    tokens = np.memmap(data.train_path, dtype=np.uint16, mode="r+")
    tokens[::50] = 60_000  # past 50,257: a damaged or foreign train.bin
    tokens.flush()
    del tokens
    with pytest.raises(DataError, match="holds token id 60,000, past GPT-2's 50,257"):
        run_training(RunRequest(tiny(max_iters=2), open_prepared(tmp_path).dir, out=tmp_path / "run"),
                     lambda e: None)


def test_runs_lists_every_run_when_one_config_toml_is_not_utf8(tmp_path, capsys):
    from trainer.runs.listing import scan_runs

    for name in ("good", "bad"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "events.jsonl").write_text('{"schema": "fwtui.events", "version": 1}\n')
    (tmp_path / "good" / "config.toml").write_text('name = "cpu-tiny"\n')
    (tmp_path / "bad" / "config.toml").write_bytes(b'name = "\xff\xfe"\n')
    assert sorted(run.name for run in scan_runs(tmp_path)) == ["bad", "good"]
    assert fwtui(["runs", str(tmp_path)]) == 0
    assert "internal error" not in capsys.readouterr().err


# --- 11: values that were accepted silently ------------------------------------------------------------------

@pytest.mark.parametrize(("args", "words"), [
    (["sample", "RUN", "--max-new-tokens", "100000000"], "must be from 1 to 10,000"),
    (["sample", "RUN", "--temperature", "inf"], "must be a finite number"),
    (["sample", "RUN", "--temperature", "nan"], "must be a finite number"),
    (["sample", "RUN", "--top-k", "-3"], "must be 0 or more"),
    (["train", "--peak-tflops", "nan"], "must be a finite number, above 0"),
    (["prepare", "x.parquet", "--workers", "-3"], "must be 0 or more"),
])
def test_flags_the_engine_cannot_use_are_refused_by_the_parser(args, words, capsys):
    with pytest.raises(SystemExit) as stop:
        fwtui(args)
    assert stop.value.code == 2 and words in capsys.readouterr().err


def test_every_way_of_sampling_checks_the_same_bounds():
    from trainer.model.sampling_options import check_sampling

    for bad in ((100_000_000, 0.8, 200), (200, float("inf"), 200), (200, float("nan"), 200), (200, 0.8, -3)):
        with pytest.raises(ConfigError):
            check_sampling(*bad)
    check_sampling(200, 0.0, 0)  # greedy, the whole vocabulary


def test_a_device_name_that_is_no_device_is_refused():
    from trainer.observe.hardware import detect_device

    with pytest.raises(ConfigError, match="not a device"):
        detect_device("../../x")


def test_a_resume_refuses_another_preset_or_recipe_and_accepts_its_own(pattern_data, tmp_path):
    run = tmp_path / "run"
    run_training(RunRequest(tiny(max_iters=2, eval_interval=2, name="cpu-tiny"), pattern_data.dir, out=run),
                 lambda e: None)
    before = (run / "config.toml").read_text()
    with pytest.raises(ConfigError, match="with its own config \\(preset 'cpu-tiny'\\), not 'gpt2-124m'"):
        launch.resolve_config(RunRequest("gpt2-124m", None, out=run, resume=True, overrides=["max_iters=4"]))
    with pytest.raises(ConfigError, match="trained with the 'nanogpt' recipe"):
        launch.resolve_config(RunRequest(None, None, out=run, resume=True, overrides=["recipe=modern"]))
    assert (run / "config.toml").read_text() == before
    assert launch.resolve_config(RunRequest("cpu-tiny", None, out=run, resume=True,
                                            overrides=["max_iters=4"])).max_iters == 4
