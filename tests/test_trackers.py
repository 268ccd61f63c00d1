"""TensorBoard and W&B as extra sinks (trainer.observe.trackers): fake writers with the calls recorded, the
packages absent (one line each), a failing tracker (one warning, the run goes on), nanoGPT's wandb keys."""

from __future__ import annotations

import sys
import threading
import types

from tests.dashboard_script import eval_at, run_started, step
from trainer.nanogpt_config import read_nanogpt_py
from trainer.observe import events as ev
from trainer.observe import trackers
from trainer.observe.trackers import TensorBoardTracker, TrackerSink, WandbTracker, tracker_sinks, wandb_settings


class FakeSummaryWriter:
    made: list["FakeSummaryWriter"] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir, self.scalars, self.texts, self.closed = log_dir, [], [], False
        FakeSummaryWriter.made.append(self)

    def add_scalar(self, tag, value, global_step=None) -> None:
        self.scalars.append((tag, value, global_step))

    def add_text(self, tag, text, global_step=None) -> None:
        self.texts.append(tag)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def fake_tensorboard(monkeypatch) -> None:
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeSummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    FakeSummaryWriter.made.clear()


def fake_wandb(monkeypatch, calls: list) -> None:
    module = types.ModuleType("wandb")
    module.init = lambda **kw: calls.append(("init", kw))
    module.log = lambda values, step=None: calls.append(("log", values, step))
    module.finish = lambda: calls.append(("finish",))
    monkeypatch.setitem(sys.modules, "wandb", module)


RUN = [run_started(), step(10), eval_at(250), ev.Finished(iter=250, reason="completed", seconds=9.0)]


def test_tensorboard_gets_the_losses_and_rates_at_their_iterations(monkeypatch, tmp_path):
    fake_tensorboard(monkeypatch)
    sink = TrackerSink(TensorBoardTracker(tmp_path / "tb"))
    for event in RUN:
        sink(event)
    sink.close()
    writer = FakeSummaryWriter.made[0]
    got = {(tag, s): v for tag, v, s in writer.scalars}
    assert got[("train/loss", 10)] == step(10).loss
    assert got[("train/mfu_percent", 10)] == step(10).mfu * 100
    assert got[("val/loss", 250)] == eval_at(250).val_loss
    assert ("gpu/util_percent", 10) not in got  # not measured in the script: not logged as 0
    assert writer.texts == ["config"] and writer.closed and writer.log_dir == str(tmp_path / "tb")


def test_wandb_gets_init_with_the_config_logs_and_finish(monkeypatch):
    calls: list = []
    fake_wandb(monkeypatch, calls)
    sink = TrackerSink(WandbTracker("owt", "gpt2-124M", "offline"))
    for event in RUN:
        sink(event)
    sink.close()
    init = calls[0]
    assert init[0] == "init" and init[1]["project"] == "owt" and init[1]["name"] == "gpt2-124M"
    assert init[1]["mode"] == "offline" and init[1]["config"]["name"] == "rtx4070-12gb"
    logs = [c for c in calls if c[0] == "log"]
    assert logs[0][2] == 10 and logs[0][1]["train/loss"] == step(10).loss
    assert logs[1][2] == 250 and logs[1][1]["val/loss"] == eval_at(250).val_loss
    assert calls[-1] == ("finish",)


def test_a_failing_tracker_is_one_warning_and_the_run_goes_on(monkeypatch):
    class Broken:
        name = "TensorBoard"

        def open(self) -> None:
            raise OSError("disk full")

        def write(self, event) -> None:
            pass

        def close(self) -> None:
            pass

    got: list = []
    broken = TrackerSink(Broken())
    broken._thread.join(10)  # its thread has failed to open
    fan = ev.FanOut(got.append, broken)
    for event in RUN:
        fan(event)
    warnings = [e for e in got if isinstance(e, ev.Warning)]
    assert len(warnings) == 1 and "TensorBoard stopped (OSError: disk full)" in warnings[0].message
    assert [e.kind for e in got if not isinstance(e, ev.Warning)] == [e.kind for e in RUN]


def test_absent_packages_are_one_line_each(monkeypatch, tmp_path):
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    config = tmp_path / "train_gpt2.py"
    config.write_text("wandb_log = True\nwandb_project = 'owt'\nbatch_size = 12\n")
    lines: list[str] = []
    assert tracker_sinks(tensorboard=str(tmp_path / "tb"), preset=str(config), say=lines.append) == []
    assert lines == ["TensorBoard not written: the tensorboard package is not installed (pip install tensorboard)",
                     "W&B not logged: wandb_log = true but wandb is not installed (pip install wandb)"]


def test_wandb_runs_offline_without_network(monkeypatch, tmp_path):
    calls: list = []
    fake_wandb(monkeypatch, calls)
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: object())
    monkeypatch.delenv("WANDB_MODE", raising=False)
    config = tmp_path / "cfg.py"
    config.write_text("wandb_log = True\nwandb_project = 'owt'\nwandb_run_name = 'r1'\n")
    lines: list[str] = []
    sinks = tracker_sinks(tensorboard=None, preset=str(config), say=lines.append, reachable=lambda: False)
    assert len(sinks) == 1 and sinks[0].tracker.mode == "offline"
    assert lines == ["W&B: project 'owt', run 'r1' (offline: api.wandb.ai not reachable, `wandb sync` uploads "
                     "it later)"]
    sinks[0].close()
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracker_sinks(tensorboard=None, preset=str(config), say=lines.append)[0].tracker.mode == "disabled"


def test_nanogpt_wandb_keys_are_read_not_ignored(tmp_path):
    path = tmp_path / "train_gpt2.py"
    path.write_text("wandb_log = True\nwandb_project = 'owt'\nwandb_run_name='gpt2-124M'\nbatch_size = 12\n")
    found = read_nanogpt_py(path)
    assert found.trackers == {"wandb_log": True, "wandb_project": "owt", "wandb_run_name": "gpt2-124M"}
    assert "wandb" not in found.values and wandb_settings(str(path))["wandb_project"] == "owt"
    assert "ignored" not in found.ignored_line(path)
    toml = tmp_path / "mine.toml"
    toml.write_text('wandb_log = true\nn_layer = 3\n')
    assert wandb_settings(str(toml)) == {"wandb_log": True}
    assert wandb_settings("gpt2-124m") == {}


def test_a_full_queue_drops_events_instead_of_waiting():
    class Slow:
        name = "slow"

        def __init__(self) -> None:
            self.gate = threading.Event()

        def open(self) -> None:
            self.gate.wait(10)  # busy opening: nothing leaves the queue

        def write(self, event) -> None:
            pass

        def close(self) -> None:
            pass

    sink = TrackerSink(Slow(), maxsize=2)
    for _ in range(5):
        sink(step(1))
    assert sink.dropped == 3
    sink.tracker.gate.set()
    sink.close()
