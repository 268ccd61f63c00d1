"""The keys of the dashboard, with what each one does to the run (? opens it, Esc/?/q closes it)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("s", "sample: type a prompt; at the next step boundary training pauses while the model writes a "
          "continuation (the sample and the events panel then say for how long)"),
    ("p", "pause / resume training at the next step boundary"),
    ("e", "evaluate now: train and val loss at the next step boundary"),
    ("c", "checkpoint now: save RUN/ckpt.pt at the next step boundary"),
    ("h", "HellaSwag now: acc_norm at the next step boundary (training waits; hellaswag_interval does it "
          "on its own), charted beside the loss"),
    ("q", "quit: stop at the next step boundary, save a checkpoint, exit"),
    ("x", "charts: x axis iterations → tokens → wall time → training FLOPs (runs of other sizes at equal compute)"),
    ("r", "charts: reference lines on / off (GPT-2 124M, chance, speed-run 3.28: presets/references.toml)"),
    ("l", "charts: log y on / off"),
    ("m", "charts: train loss EMA (debiased) off → 0.6 → 0.9 → 0.99"),
    ("a", "compare: pick runs of the runs directory to overlay with this one"),
    ("?", "this help"),
    ("↑ ↓ PgUp PgDn", "scroll the dashboard when the terminal is small"),
]


class HelpModal(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpModal { align: center middle; }
    HelpModal > Vertical {
        width: 80; max-width: 95%; height: auto; max-height: 95%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss_help", "close"),
        Binding("question_mark", "dismiss_help", "close", show=False),
        Binding("q", "dismiss_help", "close", show=False),
    ]

    def __init__(self, *, read_only: bool = False, attach: bool = False, detach: bool = False) -> None:
        """read_only: a replay (`fwtui view`); attach: `fwtui attach` (q detaches); detach: a run the app
        started as a child (several GPUs: `d` leaves it running)."""
        super().__init__()
        self.read_only, self.attach, self.detach = read_only, attach, detach

    def lines(self) -> list[str]:
        rows = []
        for key, what in KEYS:
            if key == "q" and self.read_only:
                what = "quit the viewer"
            elif key == "q" and self.attach:
                what = "detach: leave this view; the run goes on"
            elif self.read_only and key in "spech" and len(key) == 1:
                what += " (not available in a replay)"
            rows.append(f"{key:>13}  {what}")
            if key == "q" and self.detach:
                rows.append(f"{'d':>13}  detach: the app exits, the run goes on; `fwtui attach RUN` shows it again")
        return rows

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("keys", classes="title")
            yield Static("\n".join(self.lines()), id="help-keys")
            yield Static("\nEsc closes this help.")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
