"""The setup screen's "GPUs" line: how many of this machine's CUDA GPUs the run trains on.

Shown only when the GPU probe sees more than one device (with 0 or 1 there is nothing to choose). Keys when
it has the focus: left/right or -/+ step the count, a digit sets it; the screen's `n` focuses it. With more
than one, the app starts the run as `fwtui train --gpus N` under torchrun in a child process
(fwtui.child_run) and the plan shows memory per GPU and the time for N GPUs.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static


class GpuChoice(Static, can_focus=True):
    DEFAULT_CSS = """
    GpuChoice { height: 1; padding: 0 1; }
    GpuChoice:focus { background: $accent 30%; text-style: bold; }
    """

    BINDINGS = [
        Binding("left,minus", "step(-1)", "fewer GPUs", show=False),
        Binding("right,plus", "step(1)", "more GPUs", show=False),
        *[Binding(str(n), f"set({n})", show=False) for n in range(1, 10)],
    ]

    class Changed(Message):
        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.display = False  # until the probe reports more than one GPU
        self.available = 0
        """CUDA devices the probe saw."""
        self.count = 1
        """GPUs chosen for the run (1 to available)."""

    def set_available(self, available: int) -> None:
        self.available = available
        self.count = max(1, min(self.count, available))
        self.display = available > 1
        self._draw()

    def action_step(self, delta: int) -> None:
        self.action_set(self.count + delta)

    def action_set(self, count: int) -> None:
        count = max(1, min(count, self.available))
        if count != self.count:
            self.count = count
            self._draw()
            self.post_message(self.Changed(count))

    def _draw(self) -> None:
        # short: the right column is 30 cells wide at 80 columns; the keys are in the footer (n) and README
        how = "no DDP" if self.count == 1 else "DDP"
        self.update(f"GPUs ◀ {self.count} ▶ of {self.available} ({how})")


def cuda_visible(gpus: list) -> int:
    """How many of the probe's GPUs (nvidia-smi lists every card) CUDA will show the run: CUDA_VISIBLE_DEVICES,
    when set, names the ones it may use (indices or UUIDs, comma-separated; empty hides them all)."""
    import os

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return len(gpus)
    return min(len(gpus), len([entry for entry in listed.split(",") if entry.strip()]))


def gpus_problem(config, gpus: int) -> str | None:
    """Why `gpus` GPUs cannot train `config` (a RunConfig, or None while the overrides do not apply), in one
    line; None when they can. Each GPU runs an equal share of the micro-steps, so tokens per iteration stay
    the preset's: the count must divide gradient_accumulation_steps (`fwtui train --gpus N` refuses it too)."""
    if gpus <= 1 or config is None or config.gradient_accumulation_steps % gpus == 0:
        return None
    steps = config.gradient_accumulation_steps
    fits = max(n for n in range(1, gpus + 1) if steps % n == 0)
    return (f"GPUs: {gpus} do not divide gradient_accumulation_steps {steps}; choose {fits} GPUs, or set "
            f"gradient_accumulation_steps={max(1, steps // gpus) * gpus}")
