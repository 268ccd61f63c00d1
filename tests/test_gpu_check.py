"""bench/gpu_check.sh on a machine without a GPU: --dry-run lists every stage with its command and timeout,
checks its files and the engine's imports, and writes nothing; bad arguments are one line and exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"
STAGES = ("env", "pytest", "train-124m", "train-4070", "calibrate", "emulate")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and coreutils' timeout")


def run(*args: str, env_out: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    env["PYTHON"] = sys.executable  # the interpreter running the tests, with torch
    if env_out is not None:
        env["OUT"] = env_out
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_dry_run_lists_the_stages_checks_its_files_and_writes_nothing(tmp_path):
    out = tmp_path / "results"
    result = run("--dry-run", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    stage_lines = [line for line in lines if line.startswith("stage ")]
    assert [line.split()[1] for line in stage_lines] == list(STAGES)
    commands = "\n".join(stage_lines)
    assert "-m pytest" in commands and "-m gpu tests/test_gpu.py" in commands
    assert "bench/train.py --preset gpt2-124m" in commands and "bench/train.py --preset rtx4070-12gb" in commands
    assert "bench/calibrate.py" in commands and "bench/emulate_12gb.py" in commands
    # Four presets calibrated, as the issue asks.
    calibrate = next(line for line in stage_lines if line.split()[1] == "calibrate")
    assert len(calibrate.split("--presets ")[1].split()[0].split(",")) >= 4
    total = sum(int(line.split()[3].rstrip("s")) for line in stage_lines)
    assert f"timeouts total {total} s" in result.stdout and total <= 480  # the 8 minutes
    assert all(": present" in line for line in lines if line.startswith("check file "))
    assert "check imports: the engine and the bench scripts import without textual" in result.stdout
    assert "check pytest -m gpu: 11 tests collected" in result.stdout
    assert result.stdout.rstrip().endswith("dry run: every check passed")
    assert not out.exists()


def test_quick_and_only_shape_the_listing(tmp_path):
    full = run("--dry-run", "--out", str(tmp_path), "--only", "train-124m")
    quick = run("--dry-run", "--quick", "--out", str(tmp_path), "--only", "train-124m,emulate")
    assert full.returncode == 0 and quick.returncode == 0, full.stderr + quick.stderr
    assert [line.split()[1] for line in full.stdout.splitlines() if line.startswith("stage ")] == ["train-124m"]
    assert [line.split()[1] for line in quick.stdout.splitlines() if line.startswith("stage ")] == [
        "train-124m", "emulate"]
    assert "--iters 12" in full.stdout and "--iters 6" in quick.stdout


def test_out_may_come_from_the_environment(tmp_path):
    result = run("--dry-run", "--only", "env", env_out=str(tmp_path / "from-env"))
    assert result.returncode == 0, result.stderr
    assert f"output would go to {tmp_path / 'from-env'}" in result.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--bogus", "--out", "x"), "unknown option '--bogus'"),
        (("--out",), "--out needs a folder"),
        (("--dry-run",), "no output folder; pass --out DIR (or set OUT)"),
        (("--dry-run", "--out", "x", "--only", "pytest,nope"), "--only: no stage 'nope'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, says):
    result = run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and says in result.stderr


def test_a_real_run_without_a_gpu_fails_its_env_stage_and_says_so(tmp_path):
    # Not a dry run: the env stage runs, finds no CUDA device here, and the summary records it.
    try:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU: the env stage passes here")
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    result = run("--out", str(tmp_path), "--only", "env")
    assert result.returncode == 1
    summary = (tmp_path / "summary.txt").read_text()
    assert "env         failed (exit 1)" in summary
    assert "no CUDA device is visible" in summary
    assert (tmp_path / "logs" / "env.log").is_file()
