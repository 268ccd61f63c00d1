"""Events, the run log, the peak table and the controls: the engine's bottom layer. Every event type
round-trips through JSON and the log field by field; a failing sink is a warning on the others."""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import math
import os
import threading
from dataclasses import fields

import pytest

from trainer.observe import runlog
from trainer.train.controls import Controls
from trainer.observe.events import EVENT_TYPES, FanOut, Step, Warning, event_from_dict
from trainer.observe.hardware import card_spec, resolve_peak
from trainer.observe.runlog import HEADER, EventLogFollower, EventLogWriter, read_events


def make_step(iteration: int, loss: float = 3.5) -> Step:
    return Step(time=1000.0 + iteration, iter=iteration, loss=loss, lr=6e-4, step_seconds=0.5,
                tokens_per_sec=2048.0, mfu=None, mem_allocated_bytes=None, mem_reserved_bytes=123,
                mem_peak_bytes=None, mem_total_bytes=None, tokens_seen=1024 * iteration, epoch=0.01,
                elapsed_seconds=0.5 * iteration, eta_seconds=None)


def sample_value(name: str, annotation: str, index: int):
    """A distinct, non-default value for a field of the given annotation (as the dataclass spells it)."""
    if annotation.startswith("float"):
        return 1.5 + index  # exact in binary: equality after JSON holds
    if annotation.startswith("int"):
        return 1_000_003 + index  # larger than any default
    if annotation.startswith("bool"):
        return True
    if annotation.startswith("dict"):
        return {"name": "gpt2-124m", "n_layer": 12, "dropout": 0.0, "compile": None, "nested": {"a": [1, 2]}}
    if annotation.startswith("str"):
        return f"{name} ünïcode \"quoted\" {index}"
    if annotation.startswith("list[str]"):
        return [f"{name} {index}", "ünïcode"]
    raise AssertionError(f"no sample for {name}: {annotation}")


def full_event(cls, **overrides):
    """An instance of `cls` with every field set to a distinct sample value (time included)."""
    values = {f.name: sample_value(f.name, str(f.type), i) for i, f in enumerate(fields(cls))}
    values.update(overrides)
    return cls(**values)


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_every_event_type_round_trips_field_by_field(kind):
    cls = EVENT_TYPES[kind]
    event = full_event(cls)
    data = json.loads(event.to_json())
    assert data["kind"] == kind
    back = event_from_dict(data)
    assert type(back) is cls
    for f in fields(cls):
        assert getattr(back, f.name) == getattr(event, f.name), f.name
        assert type(getattr(back, f.name)) is type(getattr(event, f.name)), f.name
    assert set(data) == {"kind"} | {f.name for f in fields(cls)}  # nothing added, nothing lost


@pytest.mark.parametrize("kind", sorted(k for k, cls in EVENT_TYPES.items()
                                        if any(str(f.type).startswith("float") for f in fields(cls))))
def test_nan_and_infinities_round_trip_in_every_float_field(kind):
    cls = EVENT_TYPES[kind]
    floats = [f.name for f in fields(cls) if str(f.type).startswith("float") and f.name != "time"]
    specials = [float("nan"), float("inf"), float("-inf")]
    event = full_event(cls, **{name: specials[i % 3] for i, name in enumerate(floats)})
    back = event_from_dict(json.loads(event.to_json()))
    for i, name in enumerate(floats):
        value = getattr(back, name)
        if i % 3 == 0:
            assert math.isnan(value), name
        else:
            assert value == specials[i % 3], name


def test_optional_fields_round_trip_as_none():
    step = make_step(7)
    assert step.mfu is None and step.grad_norm is None
    assert event_from_dict(json.loads(step.to_json())) == step
    assert set(EVENT_TYPES) >= {"step", "eval", "run_started", "finished", "failed", "sample", "checkpoint"}
    assert event_from_dict({"kind": "from-the-future", "x": 1}) is None
    assert event_from_dict({**json.loads(step.to_json()), "added_later": 1}) == step  # a newer writer's key


def test_a_live_point_round_trips_and_an_older_step_reads_as_a_log_point():
    """Step.log_point (issue 20): False for a live point between log points; a Step written before the field
    existed was a log point."""
    live = event_from_dict(json.loads(dataclasses.replace(make_step(7), log_point=False).to_json()))
    assert live.log_point is False
    old = json.loads(make_step(8).to_json())
    del old["log_point"]
    assert event_from_dict(old).log_point is True


def test_what_the_log_writes_is_what_attach_reads_back(tmp_path):
    written = [full_event(cls) for _, cls in sorted(EVENT_TYPES.items())]
    written.append(make_step(3, loss=float("inf")))
    follower = EventLogFollower(tmp_path)  # attach's reader, started before the run writes
    writer = EventLogWriter(tmp_path)
    got = []
    for event in written:
        writer(event)
        got += follower.poll()  # line by line, as attach polls a live run
    writer.close()
    assert got == written
    assert read_events(tmp_path) == written  # `fwtui runs` and the planner's reader


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

    FanOut(broken, seen.append)(make_step(1))
    assert [e.kind for e in seen] == ["warning", "step"]
    assert "broken failed (RuntimeError: viewer crashed)" in seen[0].message


class FullDisk:
    """A sink failing with ENOSPC while `full` is set (as a log on a full disk)."""

    sink_name = "events.jsonl"

    def __init__(self):
        self.full = True
        self.got = []

    def __call__(self, event):
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.got.append(event)


def test_a_failing_sink_is_one_warning_per_episode_on_the_others():
    disk, seen = FullDisk(), []
    out = FanOut(disk, seen.append)
    for i in range(5):
        out(make_step(i))
    warnings = [e for e in seen if isinstance(e, Warning)]
    assert len(warnings) == 1  # once per failure episode, not every step
    assert "events.jsonl failed (OSError: [Errno 28] No space left on device)" in warnings[0].message
    assert [e.iter for e in seen if isinstance(e, Step)] == [0, 1, 2, 3, 4]  # the others never miss one
    disk.full = False
    out(make_step(5))
    recovered = [e for e in seen if isinstance(e, Warning)][1:]
    assert len(recovered) == 1 and "works again" in recovered[0].message and "since iter 0" in recovered[0].message
    assert [e.kind for e in disk.got] == ["step", "warning"]  # the recovered sink logs its own gap
    disk.full = True
    out(make_step(6))
    assert len([e for e in seen if isinstance(e, Warning)]) == 3  # a new episode: said again


class FailingWrites:
    """Stands in for os.write on one file descriptor: raises ENOSPC while `full`, else writes."""

    def __init__(self, monkeypatch):
        self.full = False
        self.fd = None
        real = os.write

        def write(fd, data):
            if fd == self.fd and self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd, data)

        monkeypatch.setattr(runlog.os, "write", write)


def test_a_full_disk_under_the_log_is_a_visible_line_and_the_log_recovers(tmp_path, monkeypatch):
    from fwtui.headless import HeadlessPrinter

    disk = FailingWrites(monkeypatch)
    now = [0.0]
    writer = EventLogWriter(tmp_path, clock=lambda: now[0])
    disk.fd = writer._fd
    screen = io.StringIO()
    out = FanOut(writer, HeadlessPrinter(screen))
    out(make_step(1))
    disk.full = True
    for i in range(2, 6):  # the disk fills at iter 2; the run goes on
        out(make_step(i))
        now[0] += 1.0
    lines = screen.getvalue().splitlines()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1
    assert (f"warning: {tmp_path / 'events.jsonl'} is not being written (No space left on device, errno ENOSPC): "
            "`fwtui attach` and `fwtui runs` will not see this run past iter 2; free disk space") in warnings[0]
    assert sum(line.startswith("iter ") for line in lines) == 5  # every step still printed
    disk.full = False
    out(make_step(6))  # within the back-off: not even tried
    assert [e.iter for e in read_events(tmp_path)] == [1]
    now[0] += runlog.RETRY_SECONDS
    out(make_step(7))  # past it: written, and the recovery said on the screen and in the log
    recovered = screen.getvalue().splitlines()[-2]  # said before iter 7's own line
    assert recovered.endswith("is written again from iter 7; the events from iter 2 until then are missing from it")
    logged = read_events(tmp_path)
    assert [e.kind for e in logged] == ["step", "step", "warning"] and [logged[0].iter, logged[1].iter] == [1, 7]
    writer.close()


def test_a_half_written_line_does_not_swallow_the_next_event(tmp_path, monkeypatch):
    writer = EventLogWriter(tmp_path, clock=lambda: 1e9)
    real = os.write
    calls = []

    def half_then_fail(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, data[:10])  # part of the line, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runlog.os, "write", half_then_fail)
    with pytest.raises(OSError):
        writer(make_step(1))
    monkeypatch.setattr(runlog.os, "write", real)
    writer._retry_at = 0.0  # the back-off is over
    writer(make_step(2))
    writer.close()
    assert [e.iter for e in read_events(tmp_path)] == [2]


def test_the_trainers_own_sink_failure_is_said_once(pattern_data, tmp_path):
    from tests.tiny_trainer_child import tiny
    from trainer.train.loop import Trainer

    got = []

    def flaky(event):  # the event goes out, then the sink's own work fails (as run.py's config wrapper)
        got.append(event)
        if isinstance(event, Step):
            raise OSError(errno.ENOSPC, "No space left on device")

    Trainer(tiny(max_iters=4, eval_interval=4, lr_decay_iters=4, warmup_iters=1), pattern_data, tmp_path,
            sink=flaky).run()
    warnings = [e for e in got if isinstance(e, Warning) and "event sink failed" in e.message]
    assert len(warnings) == 1 and "No space left on device" in warnings[0].message
    assert got[-1].kind == "finished"  # the run went on to the end


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
