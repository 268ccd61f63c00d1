"""A run holds RUN/.lock while it trains: `fwtui runs` sees it running, a second trainer is refused."""

from __future__ import annotations

import pytest

from trainer.observe import events as ev
from trainer.train.controls import Controls
from trainer.runs.launch import RunRequest, run_training
from trainer.runs.listing import RunInUseError, RunLock, is_running


def test_a_training_run_holds_its_lock_and_releases_it(tiny_parquet, tmp_path):
    run_dir = tmp_path / "run"
    controls = Controls()
    seen: dict[str, object] = {}

    def sink(event: ev.Event) -> None:
        if isinstance(event, ev.Step) and "running" not in seen:
            seen["running"] = is_running(run_dir)
            try:
                RunLock(run_dir).acquire()
            except RunInUseError as err:
                seen["refused"] = str(err)
            controls.stop("test")

    request = RunRequest(preset="cpu-tiny", data=tiny_parquet, out=run_dir,
                         overrides=["max_iters=20", "warmup_iters=2", "batch_size=2", "block_size=32", "eval_iters=1",
                                    "eval_interval=10", "log_interval=1"])
    run_training(request, sink, controls)
    assert seen["running"] is True
    assert "is running there" in seen["refused"] and "fwtui attach" in seen["refused"]
    assert is_running(run_dir) is False
    assert (run_dir / "ckpt.pt").is_file()


def test_a_second_lock_on_the_same_run_is_refused(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunInUseError):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path):
        pass  # released: the next run may take it
