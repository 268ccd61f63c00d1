"""The card's vitals (GPU utilisation, memory, temperature, power from NVML) and, on any device, the machine's
load and the process's resident memory, sampled about once a second in a thread of the trainer's process.

Why fields on Step and not an event of their own: the event sinks (events.jsonl, the app, the headless
printer) are called from the training thread only, never from two threads at once; a sampler thread
emitting its own events would race them. So the thread only keeps its latest reading, and `VitalsSink`
(a wrapper round the run's sink) copies that reading onto each Step as it passes: every Step row of
events.jsonl carries the columns, and a 600k-iteration log gets no extra lines. The reading is at most
SAMPLE_SECONDS old when the Step leaves (a pause or a long eval emits no Step, so no vitals then either).

NVML comes from `nvidia-ml-py` (module `pynvml`, the optional extra `fwtui[gpu]`), imported lazily in the
thread. Absent, or failing, the run goes on: RunStarted.vitals_source says why the GPU fields are None.
The UI never calls the hardware: it shows what the events carry.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any

from trainer.observe import events as ev

SAMPLE_SECONDS = 1.0
"""How often the thread reads the vitals: once a second is what nvidia-smi's own watch uses, and costs
microseconds (five NVML calls)."""

NO_NVML = "GPU vitals unavailable: nvidia-ml-py is not installed (pip install 'fwtui[gpu]')"


def cuda_index_for_nvml(device: str) -> int:
    """NVML's index of torch's "cuda:N": NVML numbers every GPU of the machine, CUDA only the visible ones, in
    CUDA_VISIBLE_DEVICES order when it is set (numbers only; a UUID list falls back to N)."""
    n = int(device.split(":")[1]) if ":" in device else 0
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if n < len(visible) and visible[n].isdigit():
        return int(visible[n])
    return n


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux /proc/self/statm), None where there is no /proc."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def load_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


class NvmlReader:
    """One GPU's utilisation (%), memory used (bytes, all processes), temperature (°C) and power (W)."""

    def __init__(self, index: int, nvml: Any = None) -> None:
        if nvml is None:
            import pynvml as nvml  # nvidia-ml-py; ImportError when absent
        self.nvml = nvml
        nvml.nvmlInit()
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.name = nvml.nvmlDeviceGetName(self.handle)
        if isinstance(self.name, bytes):  # older bindings return bytes
            self.name = self.name.decode("utf-8", "replace")

    def read(self) -> dict[str, Any]:
        n, h = self.nvml, self.handle
        memory = n.nvmlDeviceGetMemoryInfo(h)
        return {"gpu_util_percent": float(n.nvmlDeviceGetUtilizationRates(h).gpu),
                "gpu_mem_used_bytes": int(memory.used), "gpu_mem_total_bytes": int(memory.total),
                "gpu_temp_c": float(n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU)),
                "gpu_power_watts": n.nvmlDeviceGetPowerUsage(h) / 1000.0}  # NVML gives milliwatts

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down a library that failed is not the run's problem
            pass


def open_gpu_reader(device: str, nvml: Any = None, seconds: float = SAMPLE_SECONDS
                    ) -> tuple[NvmlReader | None, str]:
    """(a reader, where the figures come from) for a CUDA device, or (None, why not) for one line on screen."""
    if not device.startswith("cuda"):
        return None, "CPU run: load average and resident memory (no GPU vitals)"
    try:
        reader = NvmlReader(cuda_index_for_nvml(device), nvml)
    except ImportError:
        return None, NO_NVML
    except Exception as err:  # noqa: BLE001 - NVML's own errors (no driver, no permission) become a line
        return None, f"GPU vitals unavailable: NVML failed ({type(err).__name__}: {err})"
    return reader, f"NVML: {reader.name}, sampled every {seconds:g} s"


class VitalsSampler:
    """A daemon thread reading the vitals every SAMPLE_SECONDS; `latest` is the last reading (a new dict
    each time, so a reader on another thread never sees one half-written)."""

    def __init__(self, gpu: NvmlReader | None, seconds: float = SAMPLE_SECONDS) -> None:
        self.gpu, self.seconds = gpu, seconds
        self.latest: dict[str, Any] = {}
        self.problem = ""  # set when NVML fails mid-run: the GPU fields stop, the thread goes on
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fwtui-vitals", daemon=True)

    def start(self) -> "VitalsSampler":
        self._thread.start()
        return self

    def sample(self) -> dict[str, Any]:
        reading: dict[str, Any] = {"cpu_load_1m": load_1m(), "rss_bytes": rss_bytes()}
        if self.gpu is not None:
            try:
                reading.update(self.gpu.read())
            except Exception as err:  # noqa: BLE001 - a GPU that stops answering must not stop the run
                self.problem = f"GPU vitals stopped: NVML failed ({type(err).__name__}: {err})"
                self.gpu.close()
                self.gpu = None
        return reading

    def _loop(self) -> None:
        while True:
            self.latest = self.sample()
            if self._stop.wait(self.seconds):
                break
        if self.gpu is not None:
            self.gpu.close()

    def stop(self) -> None:
        self._stop.set()


class VitalsSink:
    """Wraps the run's sink: starts the sampler at RunStarted (its device decides NVML or not, and
    RunStarted.vitals_source says which), copies the latest reading onto each Step, stops at the end."""

    sink_name = "vitals"

    def __init__(self, sink: ev.EventSink, *, nvml: Any = None, seconds: float = SAMPLE_SECONDS) -> None:
        self.sink, self._nvml, self._seconds = sink, nvml, seconds
        self.sampler: VitalsSampler | None = None

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self.close()
            reader, source = open_gpu_reader(event.device, self._nvml, self._seconds)
            self.sampler = VitalsSampler(reader, self._seconds).start()
            event = dataclasses.replace(event, vitals_source=source)
        elif isinstance(event, ev.Step) and self.sampler is not None and self.sampler.latest:
            event = dataclasses.replace(event, **self.sampler.latest)
        elif isinstance(event, (ev.Finished, ev.Failed)):
            self.close()
        self.sink(event)
        if self.sampler is not None and self.sampler.problem:
            self.sink(ev.Warning(message=self.sampler.problem + "; the run goes on"))
            self.sampler.problem = ""

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
            self.sampler = None
