"""The trackers users already have, as extra sinks of the run's events: TensorBoard (`--tensorboard DIR`,
through torch.utils.tensorboard, which needs the `tensorboard` package) and Weights & Biases (`wandb_log =
true` in a nanoGPT config or a preset, with wandb_project and wandb_run_name, when `wandb` is installed).

Neither may slow or stop a run. Each tracker runs on a thread of its own behind a bounded queue
(`TrackerSink`): the training thread only enqueues (microseconds); opening the tracker (imports, wandb's
login and network) and every write happen on that thread; a full queue drops events and counts them. A
tracker that fails stops taking events, and its sink raises on the training thread from then on, which the
run's FanOut turns into one warning for the other sinks (trainer.observe.events). A package that is not
installed is one line before the run, not a failure. W&B runs offline (`wandb sync` uploads later) when
api.wandb.ai cannot be reached, unless WANDB_MODE says otherwise.
"""

from __future__ import annotations

import importlib.util
import math
import os
import queue
import socket
import threading
import tomllib
from pathlib import Path
from typing import Any, Callable

from trainer.observe import events as ev

QUEUE_EVENTS = 10_000
"""Events a tracker may lag behind by before new ones are dropped: minutes of Steps at any log_interval."""
WANDB_HOST = ("api.wandb.ai", 443)
NETWORK_PROBE_SECONDS = 2.0


def scalars(event: ev.Event) -> dict[str, float]:
    """The event's numbers as tracker scalars, named "section/what" (TensorBoard groups by the prefix)."""
    out: dict[str, float | None] = {}
    if isinstance(event, ev.Step):
        out = {"train/loss": event.loss, "train/lr": event.lr, "train/tokens_per_sec": event.tokens_per_sec,
               "train/step_seconds": event.step_seconds, "train/grad_norm": event.grad_norm,
               "train/mfu_percent": None if event.mfu is None else event.mfu * 100,
               "train/tokens_seen": float(event.tokens_seen),
               "gpu/util_percent": event.gpu_util_percent, "gpu/temp_c": event.gpu_temp_c,
               "gpu/power_watts": event.gpu_power_watts,
               "gpu/mem_used_gb": None if event.gpu_mem_used_bytes is None else event.gpu_mem_used_bytes / 1e9}
    elif isinstance(event, ev.Eval):
        out = {"val/loss": event.val_loss, "val/train_loss": event.train_loss, "val/best_loss": event.best_val_loss}
    elif event.kind == "hellaswag":
        out = {"hellaswag/acc_norm": getattr(event, "acc_norm", None), "hellaswag/acc": getattr(event, "acc", None)}
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}


class TensorBoardTracker:
    name = "TensorBoard"

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = str(log_dir)
        self.writer: Any = None

    def open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.writer = SummaryWriter(log_dir=self.log_dir)

    def write(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            lines = "\n".join(f"    {k} = {v!r}" for k, v in event.config.items())  # indented: Markdown code
            self.writer.add_text("config", f"    run {event.run_dir} on {event.device_name}\n{lines}",
                                 global_step=event.start_iter)
        step = getattr(event, "iter", None)
        for tag, value in scalars(event).items():
            self.writer.add_scalar(tag, value, global_step=step)
        if isinstance(event, (ev.Eval, ev.Finished, ev.Failed)):
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class WandbTracker:
    name = "W&B"

    def __init__(self, project: str, run_name: str | None, mode: str) -> None:
        self.project, self.run_name, self.mode = project, run_name, mode
        self.wandb: Any = None
        self.started = False

    def open(self) -> None:
        import wandb

        self.wandb = wandb

    def write(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted) and not self.started:
            self.wandb.init(project=self.project, name=self.run_name, config=dict(event.config), mode=self.mode)
            self.started = True
        values = scalars(event)
        if values and self.started:
            self.wandb.log(values, step=getattr(event, "iter", None))
        if isinstance(event, (ev.Finished, ev.Failed)) and self.started:
            self.wandb.finish()
            self.started = False

    def close(self) -> None:
        if self.started:
            self.wandb.finish()
            self.started = False


class TrackerSink:
    """A tracker on its own thread behind a bounded queue; called on the training thread, returns at once."""

    def __init__(self, tracker: Any, maxsize: int = QUEUE_EVENTS) -> None:
        self.tracker = tracker
        self.sink_name = tracker.name
        self.dropped = 0
        self.error: Exception | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._loop, name=f"fwtui-{tracker.name}", daemon=True)
        self._thread.start()

    def __call__(self, event: ev.Event) -> None:
        if self.error is not None:
            raise self.error  # FanOut warns the other sinks once; the run goes on
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def describe_failure(self, err: Exception, last_iter: int | None) -> str:
        return (f"{self.sink_name} stopped ({type(err).__name__}: {err}); the run goes on without it "
                f"(events.jsonl has everything)")

    def _loop(self) -> None:
        try:
            self.tracker.open()
            while (event := self._queue.get()) is not None:
                self.tracker.write(event)
        except Exception as err:  # noqa: BLE001 - a tracker's failure is said, never raised into training
            self.error = err
        finally:
            try:
                self.tracker.close()
            except Exception:  # noqa: BLE001
                pass

    def close(self, timeout: float = 30.0) -> None:
        """After the run: let the tracker write what is queued (up to `timeout` s), then close it."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)


def wandb_settings(preset: str | None) -> dict[str, Any]:
    """wandb_log / wandb_project / wandb_run_name from a nanoGPT .py config or a TOML preset file; {} for a
    preset name (shipped presets set none) or a file without them."""
    from trainer.nanogpt_config import TRACKER_KEYS, read_nanogpt_py

    if not preset:
        return {}
    path = Path(preset)
    if path.suffix == ".py" and path.is_file():
        return read_nanogpt_py(path).trackers
    if path.suffix == ".toml" and path.is_file():
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
            return {}  # the config loader reports a broken file itself
        return {k: v for k, v in values.items() if k in TRACKER_KEYS}
    return {}


def network_reachable(host: tuple[str, int] = WANDB_HOST, timeout: float = NETWORK_PROBE_SECONDS) -> bool:
    try:
        with socket.create_connection(host, timeout=timeout):
            return True
    except OSError:
        return False


def tracker_sinks(*, tensorboard: str | None, preset: str | None, say: Callable[[str], None],
                  reachable: Callable[[], bool] = network_reachable) -> list[TrackerSink]:
    """The trackers asked for, started; each one that cannot run is one line through `say`."""
    sinks = []
    if tensorboard:
        if importlib.util.find_spec("tensorboard") is None:
            say("TensorBoard not written: the tensorboard package is not installed (pip install tensorboard)")
        else:
            sinks.append(TrackerSink(TensorBoardTracker(tensorboard)))
            say(f"TensorBoard: writing to {tensorboard} (tensorboard --logdir {tensorboard})")
    settings = wandb_settings(preset)
    if settings.get("wandb_log") is True:
        if importlib.util.find_spec("wandb") is None:
            say("W&B not logged: wandb_log = true but wandb is not installed (pip install wandb)")
        else:
            chosen = os.environ.get("WANDB_MODE")  # the user's own choice wins
            mode = chosen or ("online" if reachable() else "offline")
            project = str(settings.get("wandb_project") or "fwtui")
            name = settings.get("wandb_run_name")
            sinks.append(TrackerSink(WandbTracker(project, str(name) if name is not None else None, mode)))
            offline = (": api.wandb.ai not reachable, `wandb sync` uploads it later" if mode == "offline" and not chosen
                       else "")
            say(f"W&B: project {project!r}{f', run {name!r}' if name else ''} ({mode}{offline})")
    return sinks
