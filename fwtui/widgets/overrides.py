"""Override fields for the keys users change most, checked as they type with the engine's own messages.

An empty field keeps the preset's value (shown as the placeholder). Each field is checked alone with
trainer.config.apply_overrides so its message sits under it; then all of them together, because some
limits are between keys (warmup_iters must stay below max_iters).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Static

from trainer.config import RunConfig, apply_overrides, parse_override
from trainer.errors import ConfigError

# (config key, label in the panel): the label is short enough for an 80-column screen.
FIELDS: tuple[tuple[str, str], ...] = (
    ("max_iters", "max_iters"),
    ("batch_size", "batch_size"),
    ("gradient_accumulation_steps", "grad_accum"),
    ("learning_rate", "learning_rate"),
    ("block_size", "block_size"),
    ("compile", "compile"),
)
KEYS = tuple(key for key, _ in FIELDS)
AUTO = "auto"
"""compile's empty/`auto` value: no override (on for CUDA, off for CPU, as the engine decides)."""


def _message(err: ConfigError) -> str:
    """The engine's line without the `--set:` source prefix, which means nothing in a form."""
    text = str(err)
    return text.removeprefix("--set: ")


class OverridesPanel(Vertical):
    """Inputs for max_iters, batch_size, grad accumulation, learning_rate, block_size and compile."""

    class Changed(Message):
        """The overrides changed; `problem` is None when they all apply cleanly."""

        def __init__(self, overrides: list[str], problem: str | None) -> None:
            super().__init__()
            self.overrides = overrides
            self.problem = problem

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.base: RunConfig | None = None
        self.border_title = "overrides"
        self.border_subtitle = "empty = preset's"
        self.problem: str | None = None
        self.extra: list[str] = []
        """`--set` values from the command line for keys without a field here; they apply too."""

    def compose(self) -> ComposeResult:
        for key, label in FIELDS:
            with Horizontal(classes="override-row"):
                yield Label(label, classes="override-label")
                yield Input(id=f"set-{key}", compact=True, classes="override-input")
            yield Static("", id=f"problem-{key}", classes="problem")
        yield Static("", id="problem-all", classes="problem")

    def on_mount(self) -> None:
        for problem in self.query(".problem"):
            problem.display = False

    def set_base(self, config: RunConfig) -> None:
        """A new preset: placeholders show its values, and what was typed is checked against it."""
        self.base = config
        for key, _ in FIELDS:
            value = getattr(config, key)
            text = AUTO if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            self.query_one(f"#set-{key}", Input).placeholder = text
        self.validate()

    def prefill(self, overrides: list[str]) -> list[str]:
        """Put `--set` values for our keys in their fields; returns the ones this panel has no field for."""
        rest = []
        for item in overrides:
            try:
                key, _ = parse_override(item)
            except ConfigError:
                rest.append(item)
                continue
            raw = item.split("=", 1)[1].strip()
            if key in KEYS:
                self.query_one(f"#set-{key}", Input).value = raw
            else:
                rest.append(item)
        self.extra = rest
        self.validate()
        return rest

    def _text(self, key: str) -> str:
        """What the field holds; compile's `auto` counts as empty (the engine's default)."""
        text = self.query_one(f"#set-{key}", Input).value.strip()
        return "" if key == "compile" and text.lower() == AUTO else text

    def values(self) -> list[str]:
        """The overrides as `key=value` strings, empty fields left out."""
        return [f"{key}={self._text(key)}" for key, _ in FIELDS if self._text(key)]

    def all_overrides(self) -> list[str]:
        """The command line's other `--set` values, then the fields' (a field wins over the command line)."""
        return self.extra + self.values()

    def validate(self) -> str | None:
        """Check each field alone, then everything together; show and return the first problem."""
        problem = None
        if self.base is not None:
            for key, _ in FIELDS:
                text = self._text(key)
                line = self.query_one(f"#problem-{key}", Static)
                message = None
                if text:
                    try:
                        apply_overrides(self.base, [f"{key}={text}"])
                    except ConfigError as err:
                        message = _message(err)
                line.update(message or "")
                line.display = message is not None
                problem = problem or message
            together = self.query_one("#problem-all", Static)
            message = None
            if problem is None:
                try:
                    apply_overrides(self.base, self.all_overrides())
                except ConfigError as err:
                    message = _message(err)
            together.update(message or "")
            together.display = message is not None
            problem = problem or message
        self.problem = problem
        return problem

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.id.startswith("set-"):
            event.stop()
            self.post_message(self.Changed(self.all_overrides(), self.validate()))
