"""Events, the run log, the peak table and the controls: the engine's bottom layer."""

from __future__ import annotations

import json
import math
import threading

import pytest

from trainer.controls import Controls
from trainer.events import EVENT_TYPES, Eval, FanOut, Step, Warning, event_from_dict
from trainer.hardware import card_spec, resolve_peak
from trainer.runlog import HEADER, EventLogFollower, EventLogWriter, read_events


def make_step(iteration: int, loss: float = 3.5) -> Step:
    return Step(time=1000.0 + iteration, iter=iteration, loss=loss, lr=6e-4, step_seconds=0.5,
                tokens_per_sec=2048.0, mfu=None, mem_allocated_bytes=None, mem_reserved_bytes=123,
                mem_peak_bytes=None, mem_total_bytes=None, tokens_seen=1024 * iteration, epoch=0.01,
                elapsed_seconds=0.5 * iteration, eta_seconds=None)


def test_every_event_round_trips_through_json():
    step = make_step(7)
    assert event_from_dict(json.loads(step.to_json())) == step
    assert set(EVENT_TYPES) >= {"step", "eval", "run_started", "finished", "failed", "sample", "checkpoint"}
    assert event_from_dict({"kind": "from-the-future", "x": 1}) is None


def test_nan_loss_survives_the_log(tmp_path):
    writer = EventLogWriter(tmp_path)
    writer(make_step(3, loss=float("nan")))
    writer.close()
    (event,) = read_events(tmp_path)
    assert math.isnan(event.loss)


def test_log_has_a_schema_header_and_appends_on_resume(tmp_path):
    writer = EventLogWriter(tmp_path)
    writer(make_step(1))
    writer.close()
    writer = EventLogWriter(tmp_path)  # a resumed run appends, without a second header
    writer(make_step(2))
    writer.close()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == HEADER and len(lines) == 3
    assert [e.iter for e in read_events(tmp_path)] == [1, 2]
    assert (tmp_path / "events.jsonl").stat().st_mode & 0o077 == 0  # owner-only


def test_follower_waits_for_a_torn_line_to_complete(tmp_path):
    path = tmp_path / "events.jsonl"
    line = make_step(5).to_json()
    path.write_text(json.dumps(HEADER) + "\n" + line[:20])
    follower = EventLogFollower(tmp_path)
    assert follower.poll() == []
    with open(path, "a") as f:
        f.write(line[20:] + "\n")
    assert [e.iter for e in follower.poll()] == [5]
    assert follower.poll() == []


def test_fanout_keeps_going_when_a_sink_fails():
    seen = []

    def broken(event):
        raise RuntimeError("viewer crashed")

    FanOut(broken, seen.append)(Warning(message="x"))
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("NVIDIA GeForce RTX 4070", "RTX 4070"),
        ("NVIDIA GeForce RTX 4070 Ti", "RTX 4070 Ti"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
        ("NVIDIA GeForce RTX 3060", "RTX 3060"),
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA A10", "A10"),
    ],
)
def test_peak_table_matches_the_right_card(name, label):
    assert card_spec(name).label == label


@pytest.mark.parametrize("name", ["NVIDIA GeForce RTX 4070 SUPER", "NVIDIA GeForce GTX 1080", "Tesla T4"])
def test_unknown_cards_have_no_peak_never_the_a100(name):
    peak, source = resolve_peak(name)
    assert peak is None and source.startswith("unknown")


def test_peak_override_and_table_source():
    assert resolve_peak("NVIDIA GeForce RTX 4070")[0] == pytest.approx(58.3e12)
    assert "table" in resolve_peak("NVIDIA GeForce RTX 4070")[1]
    peak, source = resolve_peak("Tesla T4", override_tflops=65)
    assert peak == 65e12 and source == "--peak-tflops 65"


def test_controls_from_another_thread():
    controls = Controls()
    worker = threading.Thread(target=lambda: (controls.request_sample("Once"), controls.request_eval(),
                                              controls.pause()))
    worker.start()
    worker.join()
    assert controls.paused and controls.wait_while_paused(0.01)
    requests = controls.take()
    assert requests.evaluate and not requests.checkpoint and requests.samples[0].prompt == "Once"
    assert controls.take().samples == []
    controls.stop("quit")
    assert controls.stop_requested and not controls.paused and controls.stop_reason == "quit"


def test_eval_event_fields_are_plain():
    event = Eval(time=1.0, iter=10, train_loss=4.0, val_loss=4.1, best_val_loss=4.1, seconds=2.0)
    assert event.to_dict()["kind"] == "eval"
