"""Typed events: the one stream that drives the app, RUN/events.jsonl, `fwtui attach` and the tests.

Each event is a frozen dataclass with a `kind` and a wall-clock `time` (seconds since the epoch) and
plain JSON-able fields. The trainer emits them to a sink (any callable taking an Event); a sink must
return at once. A sink that raises is the FanOut's business: it warns the other sinks (a full disk under
RUN/events.jsonl shows on the screen) and the run goes on. Units are in the field names or their comments.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, ClassVar

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    def to_json(self) -> str:
        # A diverged run's NaN/inf loss must reach the log (health checks read it back): Python's json
        # writes NaN/Infinity, which json.loads reads; strict JSON would raise and lose the event.
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=True, default=str)


@dataclass(frozen=True, kw_only=True)
class PrepareProgress(Event):
    """Tokenization progress of `prepare`, emitted a few times a second."""

    kind: ClassVar[str] = "prepare_progress"
    documents: int
    bytes_done: int
    """Compressed parquet bytes of the row groups finished so far."""
    bytes_total: int
    tokens: int
    tokens_per_sec: float
    eta_seconds: float | None
    source: str = ""
    """The file being read now."""
    file_index: int = 0
    """1-based position of that file among the inputs (0: not said)."""
    file_count: int = 0
    finished_file: str = ""
    """Set on the report sent as a file's last tokens are written: that file (one line per file to show)."""
    file_tokens: int = 0
    """With finished_file: the tokens (with their <|endoftext|>) that file gave."""
    file_documents: int = 0
    file_resumed: bool = False
    """With finished_file: the prepare resumed inside that file, so its figures are since the resume."""


@dataclass(frozen=True, kw_only=True)
class PrepareDone(Event):
    kind: ClassVar[str] = "prepare_done"
    data_dir: str
    train_tokens: int
    val_tokens: int
    documents: int
    seconds: float
    cached: bool
    """True when an earlier prepare of the same inputs and settings was reused."""


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    run_dir: str
    config: dict[str, Any]
    """The resolved RunConfig as a dict (what config.toml holds)."""
    params: int
    """nanoGPT's count (no position embedding)."""
    params_with_embeddings: int
    device: str
    """"cuda:0", "cpu"..."""
    device_name: str
    """"NVIDIA GeForce RTX 4070", or the CPU's model name."""
    device_memory_bytes: int | None
    peak_flops: float | None
    """The peak dense FLOP/s of the precision that runs (trainer.model.precision.peak_for_precision: the card's bf16
    figure for bf16/fp16, half of it for fp32 on CUDA, which runs in TF32), or None when unknown (then MFU is
    unknown)."""
    peak_flops_source: str
    """Where peak_flops came from: "table: ...", "measured ...", "--peak-tflops", "TF32 = 0.5 × bf16 peak; ...",
    or why it is unknown."""
    flops_per_token: int
    tokens_per_iter: int
    dataset_tokens: int
    """Training-split tokens."""
    start_iter: int
    max_iters: int
    precision: str
    """"bfloat16", "float16" or "float32": what the forward pass runs in."""
    compiled: bool
    data_dir: str = ""
    vitals_source: str = ""
    """Where the Steps' vitals come from ("NVML: NVIDIA H100 ..., sampled every 1 s"), or why the GPU ones
    are missing ("GPU vitals unavailable: nvidia-ml-py is not installed ..."); "" in logs from before vitals."""
    world_size: int = 1
    """Processes training together (torchrun's WORLD_SIZE); 1 for one process."""
    device_names: list[str] = field(default_factory=list)
    """Every rank's device name, rank order (one entry for one process). peak_flops is one card's; Step.mfu is
    per card (total tokens/s / world_size against that peak), which for identical cards is also the total MFU."""


@dataclass(frozen=True, kw_only=True)
class Step(Event):
    """One optimizer step: every log_interval iterations (a log point), and between them a live point at least
    every few seconds (trainer.train.live_figures: `log_point` False, read without a sync inside a step)."""

    kind: ClassVar[str] = "step"
    iter: int
    loss: float
    """Training loss of this iteration's last micro-batch (nats/token)."""
    lr: float
    step_seconds: float
    """Wall time of this iteration (all micro-batches, the optimizer step)."""
    tokens_per_sec: float
    mfu: float | None
    """Fraction of RunStarted.peak_flops (0.41 = 41%), or None when the peak is unknown."""
    mem_allocated_bytes: int | None
    mem_reserved_bytes: int | None
    """CUDA allocator's reserved bytes; on CPU the process's resident memory."""
    mem_peak_bytes: int | None
    mem_total_bytes: int | None
    tokens_seen: int
    epoch: float
    """tokens_seen / training-split tokens."""
    elapsed_seconds: float
    eta_seconds: float | None
    """Remaining iterations x smoothed step time + the measured cost of evals and checkpoints to come."""
    grad_norm: float | None = None
    # The vitals (trainer.observe.vitals): the sampler thread's latest reading, at most ~1 s old; None when
    # not measured (no NVML, a CPU run's GPU fields, a log from before vitals).
    gpu_util_percent: float | None = None
    """NVML utilisation: % of the last sample period in which a kernel ran on the GPU."""
    gpu_mem_used_bytes: int | None = None
    """NVML: the card's memory in use by every process (above the allocator's reserved bytes)."""
    gpu_mem_total_bytes: int | None = None
    gpu_temp_c: float | None = None
    gpu_power_watts: float | None = None
    cpu_load_1m: float | None = None
    """The machine's 1-minute load average (runnable processes)."""
    rss_bytes: int | None = None
    """This process's resident memory now."""
    skipped_steps: int = 0
    """Steps of the run so far whose loss or gradient norm was not finite, so the update was skipped."""
    log_point: bool = True
    """True at a log point (iter % log_interval == 0, or the last iteration): what the headless printer prints.
    False for a live point between them: its loss was copied off the device without waiting and read a step or
    so later, and its step time is the host's time since the previous point."""


@dataclass(frozen=True, kw_only=True)
class Progress(Event):
    """How far the run got, at most about once a second (trainer.train.live_figures): light, no loss."""

    kind: ClassVar[str] = "progress"
    iter: int
    """The last iteration finished (as Step.iter)."""
    elapsed_seconds: float
    eta_seconds: float | None
    """As Step.eta_seconds, from the same estimator; None until a step time has been measured."""
    tokens_seen: int = 0
    epoch: float = 0.0
    """As Step's: tokens_seen / training-split tokens."""


@dataclass(frozen=True, kw_only=True)
class Eval(Event):
    kind: ClassVar[str] = "eval"
    iter: int
    train_loss: float
    val_loss: float
    best_val_loss: float
    seconds: float
    train_tokens: int | None = None
    """Tokens the train loss covers: its fixed windows x block_size (None in older logs)."""
    val_tokens: int | None = None
    """Tokens the val loss covers: the same fixed, non-overlapping windows of val.bin at every evaluation."""
    train_bpb: float | None = None
    """The train loss in bits per UTF-8 byte of the windows' target text (trainer.data.bpb; None in older logs)."""
    val_bpb: float | None = None
    """The val loss in bits per UTF-8 byte: sum of the target tokens' losses / ln 2 / their bytes."""


@dataclass(frozen=True, kw_only=True)
class HellaSwag(Event):
    """HellaSwag scored at a step boundary (trainer.train.hellaswag): the fractions of `count` examples right."""

    kind: ClassVar[str] = "hellaswag"
    iter: int
    acc: float
    """Right by the ending's summed loss."""
    acc_norm: float
    """Right by the ending's mean loss per token: the figure charted and compared (GPT-2 124M: 0.2955)."""
    count: int
    seconds: float
    """Wall time of the scoring, which training waited for."""


@dataclass(frozen=True, kw_only=True)
class CheckpointSaved(Event):
    kind: ClassVar[str] = "checkpoint"
    iter: int
    path: str
    bytes: int
    seconds: float
    """How long the writer thread took (the NaN check of the copy, torch.save, fsync, rename): training did not
    wait for it."""
    reason: str
    """"eval", "improved", "requested", "stop", "final"."""
    held_seconds: float | None = None
    """How long training was held: the copy of the state to CPU memory, plus any wait for the write before it.
    None in logs from before asynchronous checkpoints (the save then held training for `seconds`)."""
    write_seconds: float | None = None
    """The same as `seconds` (None in older logs)."""


@dataclass(frozen=True, kw_only=True)
class Sample(Event):
    kind: ClassVar[str] = "sample"
    iter: int
    prompt: str
    text: str
    """The generated continuation (prompt excluded)."""
    seconds: float


@dataclass(frozen=True, kw_only=True)
class StateChanged(Event):
    """Paused or resumed by a control."""

    kind: ClassVar[str] = "state"
    iter: int
    state: str
    """"paused" or "running"."""


@dataclass(frozen=True, kw_only=True)
class Warning(Event):  # noqa: A001 - the event's name in the user's words
    kind: ClassVar[str] = "warning"
    message: str


@dataclass(frozen=True, kw_only=True)
class Finished(Event):
    kind: ClassVar[str] = "finished"
    iter: int
    reason: str
    """"completed" (max_iters reached) or "stopped" (a control, a signal)."""
    seconds: float
    """Wall time of the run (this process)."""
    final_train_loss: float | None = None
    final_val_loss: float | None = None


@dataclass(frozen=True, kw_only=True)
class Failed(Event):
    kind: ClassVar[str] = "failed"
    message: str
    """One line: what went wrong and what to do."""
    iter: int | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (PrepareProgress, PrepareDone, RunStarted, Step, Progress, Eval, HellaSwag, CheckpointSaved, Sample,
                StateChanged, Warning, Finished, Failed)
}

EventSink = Callable[[Event], None]


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """Rebuild an event from its JSON dict; None for an unknown kind (a newer writer), unknown keys dropped."""
    cls = EVENT_TYPES.get(data.get("kind", ""))
    if cls is None:
        return None
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


class FanOut:
    """A sink that hands each event to several sinks; a failing sink never stops the others or the run.

    When a sink raises, the others receive one Warning naming it, the error and what it costs (a sink
    may say that itself: `describe_failure(error, last_iter)`), once per failure episode, not once per
    event. When the sink takes an event again, every sink receives one Warning saying it recovered
    (`describe_recovery(failed_at_iter, iter)`), so the log itself records its gap.
    """

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = [s for s in sinks if s is not None]
        self._failing: dict[int, int | None] = {}  # sink index -> the last iteration seen when it failed
        self._last_iter: int | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(getattr(event, "iter", None), int):
            self._last_iter = event.iter
        for index, sink in enumerate(self.sinks):
            try:
                sink(event)
            except Exception as err:  # noqa: BLE001 - a broken viewer or a full disk must never stop training
                if index not in self._failing:
                    self._failing[index] = self._last_iter
                    self._tell(Warning(message=_failure_message(sink, err, self._last_iter)), skip=index)
                continue
            if index in self._failing:
                failed_at = self._failing.pop(index)
                self._tell(Warning(message=_recovery_message(sink, failed_at, self._last_iter)))

    def _tell(self, warning: Warning, skip: int | None = None) -> None:
        """Hand a warning about a sink to the sinks that are working, ignoring their errors (no recursion)."""
        for index, sink in enumerate(self.sinks):
            if index == skip or index in self._failing:
                continue
            try:
                sink(warning)
            except Exception:  # noqa: BLE001 - its own failure shows at its next event
                pass


def sink_name(sink: EventSink) -> str:
    """How a warning names a sink: its `sink_name`, else its class (or function) name."""
    name = getattr(sink, "sink_name", None)
    return name if isinstance(name, str) else getattr(sink, "__qualname__", type(sink).__name__)


def _failure_message(sink: EventSink, err: Exception, last_iter: int | None) -> str:
    describe = getattr(sink, "describe_failure", None)
    if callable(describe):
        return describe(err, last_iter)
    return (f"{sink_name(sink)} failed ({type(err).__name__}: {err}); it gets no events until it works again; "
            "the run goes on")


def _recovery_message(sink: EventSink, failed_at: int | None, now: int | None) -> str:
    describe = getattr(sink, "describe_recovery", None)
    if callable(describe):
        return describe(failed_at, now)
    return f"{sink_name(sink)} works again; it missed the events since {_at(failed_at)}"


def _at(it: int | None) -> str:
    return f"iter {it:,}" if it is not None else "the start"
