"""The card's vitals (trainer.observe.vitals): a fake pynvml with known values, NVML absent, NVML failing,
the columns in events.jsonl, the headless line and the dashboard panel."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import time
import types

import pytest

from fwtui.headless import HeadlessPrinter
from tests.dashboard_app import DashApp, text_of
from tests.dashboard_script import run_started, step
from trainer.observe import events as ev
from trainer.observe.runlog import EventLogWriter, read_events
from trainer.observe.vitals import NO_NVML, VitalsSink, cuda_index_for_nvml


def fake_pynvml(*, fail_init: bool = False, fail_read: bool = False) -> types.ModuleType:
    """pynvml's calls that vitals makes, answering an 87%-busy card at 66 °C drawing 215 W, 40 of 80 GB used."""
    nvml = types.ModuleType("pynvml")
    nvml.NVML_TEMPERATURE_GPU = 0
    nvml.calls = []

    def init():
        if fail_init:
            raise RuntimeError("NVML Shared Library Not Found")
        nvml.calls.append("init")

    def util(handle):
        if fail_read:
            raise RuntimeError("GPU is lost")
        return types.SimpleNamespace(gpu=87, memory=40)

    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: nvml.calls.append("shutdown")
    nvml.nvmlDeviceGetHandleByIndex = lambda i: nvml.calls.append(("handle", i)) or f"gpu{i}"
    nvml.nvmlDeviceGetName = lambda h: b"Fake H100"
    nvml.nvmlDeviceGetUtilizationRates = util
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=40 * 10**9, total=80 * 10**9, free=0)
    nvml.nvmlDeviceGetTemperature = lambda h, sensor: 66
    nvml.nvmlDeviceGetPowerUsage = lambda h: 215_000  # milliwatts
    return nvml


class Recorder(list):
    def __call__(self, event) -> None:
        self.append(event)


def wait_for_sample(sink: VitalsSink) -> None:
    """The sampler thread's first reading (a wait for the thread, not a measure of its speed)."""
    deadline = time.monotonic() + 10
    while not sink.sampler.latest:
        assert time.monotonic() < deadline, "the vitals thread took no sample"
        time.sleep(0.01)


def run_through(sink: VitalsSink, device: str = "cuda:0") -> None:
    sink(dataclasses.replace(run_started(device=device), time=time.time()))
    wait_for_sample(sink)
    sink(step(10, cpu=not device.startswith("cuda")))
    sink(ev.Finished(iter=10, reason="completed", seconds=1.0))


def test_a_fake_nvml_reaches_each_step(monkeypatch):
    nvml = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    got = Recorder()
    sink = VitalsSink(got, seconds=0.05)
    run_through(sink)
    started, stepped = got[0], got[1]
    assert started.vitals_source == "NVML: Fake H100, sampled every 0.05 s"
    assert (stepped.gpu_util_percent, stepped.gpu_temp_c, stepped.gpu_power_watts) == (87.0, 66.0, 215.0)
    assert (stepped.gpu_mem_used_bytes, stepped.gpu_mem_total_bytes) == (40 * 10**9, 80 * 10**9)
    assert stepped.rss_bytes > 0 and stepped.cpu_load_1m is not None
    assert stepped.loss == step(10).loss  # the rest of the Step passes unchanged
    assert sink.sampler is None  # stopped at Finished
    assert ("handle", 0) in nvml.calls


def test_nvml_absent_says_why_and_the_run_goes_on(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    got = Recorder()
    run_through(VitalsSink(got, seconds=0.05))
    assert got[0].vitals_source == NO_NVML
    assert got[1].gpu_util_percent is None and got[1].rss_bytes > 0
    assert [e.kind for e in got] == ["run_started", "step", "finished"]


def test_nvml_failing_at_start_or_mid_run_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(fail_init=True))
    got = Recorder()
    run_through(VitalsSink(got, seconds=0.05))
    assert got[0].vitals_source.startswith("GPU vitals unavailable: NVML failed (RuntimeError: NVML Shared")

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(fail_read=True))
    got = Recorder()
    run_through(VitalsSink(got, seconds=0.05))
    warnings = [e for e in got if isinstance(e, ev.Warning)]
    assert len(warnings) == 1 and "GPU vitals stopped" in warnings[0].message and "goes on" in warnings[0].message
    assert got[-1].kind == "finished"


def test_a_cpu_run_carries_load_and_rss_without_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    got = Recorder()
    run_through(VitalsSink(got, seconds=0.05), device="cpu")
    assert got[0].vitals_source.startswith("CPU run")
    assert got[1].gpu_util_percent is None and got[1].rss_bytes > 0


def test_nvml_index_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert cuda_index_for_nvml("cuda:0") == 3 and cuda_index_for_nvml("cuda:1") == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")
    assert cuda_index_for_nvml("cuda:0") == 0
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert cuda_index_for_nvml("cuda:2") == 2


def test_vitals_are_columns_of_events_jsonl(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    writer = EventLogWriter(tmp_path)
    run_through(VitalsSink(writer, seconds=0.05))
    writer.close()
    rows = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()[1:]]
    row = next(r for r in rows if r["kind"] == "step")
    assert row["gpu_util_percent"] == 87.0 and row["gpu_power_watts"] == 215.0 and row["gpu_temp_c"] == 66.0
    events = read_events(tmp_path / "events.jsonl")
    assert next(e for e in events if e.kind == "step").gpu_mem_used_bytes == 40 * 10**9


def vital_step(i: int, **vitals) -> ev.Step:
    return dataclasses.replace(step(i), **({"gpu_util_percent": 87.0, "gpu_temp_c": 66.0, "gpu_power_watts": 215.0,
                                            "gpu_mem_used_bytes": 40 * 10**9, "gpu_mem_total_bytes": 80 * 10**9,
                                            "cpu_load_1m": 1.5, "rss_bytes": 3 * 10**9} | vitals))


def test_headless_prints_a_vitals_line_every_30_seconds():
    out = io.StringIO()
    printer = HeadlessPrinter(out)
    printer(dataclasses.replace(run_started(), vitals_source="NVML: Fake H100, sampled every 1 s"))
    for i in (10, 11, 14):  # steps 9.34 s apart: 10 prints, 11 does not (9 s later), 14 does (37 s later)
        printer(vital_step(i))
    lines = [line for line in out.getvalue().splitlines() if line.startswith("vitals:")]
    assert lines[0] == "vitals: NVML: Fake H100, sampled every 1 s"
    assert lines[1] == ("vitals: GPU 87% busy · 66 °C · 215 W · 40.0 of 80.0 GB used · load 1.5 (1 min) · "
                        "RSS 3.0 GB when sampled")
    assert len(lines) == 3


def test_headless_says_nothing_of_vitals_for_an_old_log():
    out = io.StringIO()
    printer = HeadlessPrinter(out)
    printer(run_started())
    printer(step(10))
    assert "vitals" not in out.getvalue()


async def test_the_dashboard_panel_shows_the_vitals_or_why_not():
    app = DashApp()
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.dash
        dash.feed(run_started())  # a log from before vitals: no panel
        dash.feed(step(10))
        dash.redraw_now()
        await pilot.pause()
        assert not dash.query_one("#vitals").display
        dash.feed(dataclasses.replace(run_started(), vitals_source=NO_NVML))
        dash.feed(dataclasses.replace(step(20), cpu_load_1m=2.0, rss_bytes=2 * 10**9))
        dash.redraw_now()
        await pilot.pause()
        assert dash.query_one("#vitals").display
        assert text_of(app, "#vitals").splitlines() == [NO_NVML, "load 2.0 (1 min) · RSS 2.0 GB when sampled"]
        dash.feed(vital_step(30))
        dash.redraw_now()
        await pilot.pause()
        assert text_of(app, "#vitals").startswith("GPU 87% busy · 66 °C · 215 W · 40.0 of 80.0 GB used")


@pytest.mark.parametrize("device", ["cuda:0", "cpu"])
def test_the_sampler_thread_ends_with_the_run(monkeypatch, device):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    sink = VitalsSink(Recorder(), seconds=0.05)
    sink(run_started(device=device))
    wait_for_sample(sink)
    thread = sink.sampler._thread
    sink(ev.Failed(message="disk full"))
    thread.join(timeout=10)
    assert not thread.is_alive()
