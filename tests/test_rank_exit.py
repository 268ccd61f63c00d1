"""end_rank_process: a torchrun rank leaves with its exit status after running the exit handlers and flushing
its output, skipping only the interpreter's teardown (where gloo's C++ teardown sometimes aborted a rank whose
work was done); one process exits as usual."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import atexit, sys
    from pathlib import Path
    from trainer.train.distributed import end_rank_process

    marker = Path(sys.argv[1])
    atexit.register(lambda: marker.write_text("exit handlers ran"))
    sys.stdout.write("written without a newline, still buffered")  # reaches the pipe only if flushed
    end_rank_process({code})
    print("never printed")
""")


def run_child(tmp_path: Path, code: str, rank: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RANK", None)
    if rank is not None:
        env["RANK"] = rank
    return subprocess.run([sys.executable, "-c", CHILD.format(code=code), str(tmp_path / "marker")], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("rank", ["1", None])
def test_the_status_the_exit_handlers_and_the_buffered_output_all_survive(tmp_path, rank):
    done = run_child(tmp_path, "3", rank)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "written without a newline, still buffered"
    assert (tmp_path / "marker").read_text() == "exit handlers ran"


def test_a_rank_with_no_status_exits_0_and_a_message_is_printed_with_status_1(tmp_path):
    assert run_child(tmp_path, "None", "0").returncode == 0
    done = run_child(tmp_path, "'fwtui: it went wrong'", "1")
    assert done.returncode == 1 and "fwtui: it went wrong" in done.stderr
