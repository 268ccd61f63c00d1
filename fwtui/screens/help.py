"""The keys of a screen, with what each one does (? opens it, Esc/?/q closes it): the dashboard's (KEYS, with
what each does to the run) or the setup screen's (SETUP_KEYS).

Two columns: the keys, right-aligned, and what they do, wrapped within its own column (never under the keys);
the list scrolls when the terminal is too short for it.
"""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from fwtui.screens.back_to_setup import BACK_HELP

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
RUN_KEYS = "spech"
"""The keys that ask the run for something: nothing to ask in a replay or once the run is over."""

SETUP_KEYS = [
    ("↑ ↓", "move through the presets; the plan follows the cursor"),
    ("1-9 0", "jump to a preset by its number (0: the 10th; two digits typed quickly: 10 and past it)"),
    ("Enter", "choose the preset and go on to the data path"),
    ("/", "filter the presets by name, tier or description; Enter keeps the filter, Esc clears it"),
    ("Tab", "next panel: presets → data → runs to continue → overrides → start"),
    ("d", "build the demo corpus from Python's own docstrings (nothing to download) and pick it"),
    ("space", "in the data panel's list of shards: tick or untick a file (the plan counts the ticked ones)"),
    ("r", "continue a stopped run: go to the list of runs, Enter (or r) continues the highlighted one"),
    ("g G", "plan for a card of the table (estimates): the next card, the previous one; back to this machine"),
    ("n", "how many GPUs to train on (shown when there are several)"),
    ("t", "start the run"),
    ("q", "quit"),
    ("?", "this help"),
]


class HelpModal(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpModal { align: center middle; }
    HelpModal > VerticalScroll {
        width: 80; max-width: 95%; height: auto; max-height: 95%;
        border: thick $primary; background: $surface; padding: 0 1; scrollbar-size-vertical: 1;
        border-title-style: bold;
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss_help", "close"),
        Binding("question_mark", "dismiss_help", "close", show=False),
        Binding("q", "dismiss_help", "close", show=False),
    ]

    def __init__(self, *, read_only: bool = False, attach: bool = False, detach: bool = False, over: bool = False,
                 back: bool = False, keys: list[tuple[str, str]] | None = None, title: str = "keys") -> None:
        """read_only: a replay (`fwtui view`); attach: `fwtui attach` (q detaches); detach: a run the app
        started as a child (several GPUs: `d` leaves it running); over: the run has ended; back: `b` goes back
        to the setup screen (the app's run has ended, fwtui.screens.back_to_setup). `keys`: another screen's
        keys (SETUP_KEYS) instead of the dashboard's."""
        super().__init__()
        self.read_only, self.attach, self.detach, self.over, self.back = read_only, attach, detach, over, back
        self.keys, self.title_text = keys, title

    def rows(self) -> list[tuple[str, str]]:
        """(keys, what they do) in the order shown."""
        if self.keys is not None:
            return list(self.keys)
        rows = []
        for key, what in KEYS:
            if key == "q" and (self.read_only or self.over):
                what = "quit the viewer" if self.read_only or self.attach else "quit"
            elif key == "q" and self.attach:
                what = "detach: leave this view; the run goes on"
            elif len(key) == 1 and key in RUN_KEYS and (self.read_only or self.over):
                what += " (not available in a replay)" if self.read_only else " (the run is over)"
            rows.append((key, what))
            if key == "q" and self.detach and not self.over:
                rows.append(("d", "detach: the app exits, the run goes on; `fwtui attach RUN` shows it again"))
            if key == "q" and self.back:
                rows.append(BACK_HELP)
        return rows

    def lines(self) -> list[str]:
        """The rows as plain lines, for tests and logs: `            q  quit: ...`."""
        return [f"{key:>13}  {what}" for key, what in self.rows()]

    def table(self) -> Table:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(justify="right", no_wrap=True, style="bold")
        grid.add_column(ratio=1)  # wraps within itself, never under the keys
        for key, what in self.rows():
            grid.add_row(key, what)
        return grid

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:  # the title and "Esc closes" on its border stay in view
            box.border_title = self.title_text
            box.border_subtitle = "Esc closes this help"
            yield Static(self.table(), id="help-keys")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
