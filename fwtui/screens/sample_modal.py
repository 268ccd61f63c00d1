"""The `s` modal: type a prompt, Enter asks the running trainer for a sample, the text shows when it arrives.

The request is served at the next step boundary: the trainer writes the text on its own thread, so training
pauses while it does, and the status line then says for how long (the Sample event's `seconds`). The
dashboard forwards every Sample event here and the one answering our prompt is shown. Esc closes the modal
at any time.
"""

from __future__ import annotations

from typing import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from fwtui import format as fmt
from trainer.observe.events import Sample

START_OF_TEXT = "\n"
"""What an empty prompt sends: the trainer's default prompt, i.e. generate from the start of a text."""
# The lines above the text, each within the modal's 72 columns at 80x24 (95% of 80, less border and padding):
# a longer one wrapped or was cut there.
TITLE = "sample · type a prompt, Enter asks the run (empty: a text's start)"
ASKED = "asked: at the next step boundary, training pauses while it writes…"


class SampleModal(ModalScreen[None]):
    DEFAULT_CSS = """
    SampleModal { align: center middle; }
    SampleModal > Vertical {
        width: 100; max-width: 95%; height: 80%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    SampleModal #sample-status { height: auto; margin: 1 0; }
    SampleModal VerticalScroll { height: 1fr; border: round $secondary; }
    """

    BINDINGS = [Binding("escape", "close", "close")]

    def __init__(self, request: Callable[[str], None]) -> None:
        """`request(prompt)` asks the trainer for a sample (the dashboard binds the length and temperature)."""
        super().__init__()
        self._request = request
        self.sent_prompt: str | None = None
        self.received: Sample | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(TITLE, markup=False)
            yield Input(placeholder="prompt (empty = start of a text)", id="sample-prompt")
            yield Static("Esc closes without asking", id="sample-status", markup=False)
            with VerticalScroll():
                yield Static("", id="sample-text", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        prompt = event.value if event.value else START_OF_TEXT
        self.sent_prompt, self.received = prompt, None
        self._request(prompt)
        self.query_one("#sample-status", Static).update(ASKED)
        self.query_one("#sample-text", Static).update("")

    def show_sample(self, sample: Sample) -> bool:
        """Show `sample` if it answers the prompt we sent; True when shown."""
        if self.sent_prompt is None or self.received is not None:
            return False
        if sample.prompt != self.sent_prompt and sample.prompt.strip() != self.sent_prompt.strip():
            return False
        self.received = sample
        self.query_one("#sample-status", Static).update(
            f"iter {fmt.count(sample.iter)} · training paused {fmt.seconds(sample.seconds)} · Enter asks again · "
            "Esc closes")
        text = Text()
        if sample.prompt.strip():
            text.append(sample.prompt, style="italic")
        text.append(sample.text)
        self.query_one("#sample-text", Static).update(text)
        return True

    @property
    def generated_text(self) -> str:
        return "" if self.received is None else self.received.text

    def action_close(self) -> None:
        self.dismiss(None)
