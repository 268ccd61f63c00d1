"""The preset list: one row per preset with its VRAM tier, exact parameters and tokens per iteration.

Every row is numbered for the digit keys (two digits typed within TYPE_AHEAD_SECONDS reach the 10th and
past it), a `/` filter narrows them by name, tier or description (Enter keeps it, Esc clears it; the border
says while one is on), and a mark says whether the planner expects the preset to fit the detected card
(✓ fits, ✗ too big, blank when nothing is known). The marks come from the screen (the planner's memory estimate); this widget
only draws them.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from trainer.config import RunConfig
from trainer.model.formulas import count_params, format_count

FITS, TOO_BIG = "✓", "✗"
TYPE_AHEAD_SECONDS = 1.0
"""A digit typed this soon after another joins it (1 then 2: the 12th row), when that row exists."""


def preset_row(number: int, config: RunConfig, fits: bool | None, name_width: int, number_width: int = 1) -> Text:
    """` 1 ✓ rtx4070-12gb   12 GB  63.52M  524.29k`: number, fit mark, name, tier, params, tokens/iter."""
    mark = " " if fits is None else (FITS if fits else TOO_BIG)
    row = Text(no_wrap=True, overflow="ellipsis")
    row.append(f"{number:>{number_width}} ", style="dim")
    row.append(f"{mark} ", style="green" if fits else ("red" if fits is False else ""))
    row.append(f"{config.name:<{name_width}}", style="bold")
    row.append(f" {config.vram_tier or '-':>6}")
    row.append(f"{format_count(count_params(config).nanogpt):>8}")
    row.append(f"{format_count(config.tokens_per_iter):>8}", style="dim")
    return row


class PresetList(Vertical):
    """A filter input (shown on `/`) above an OptionList of presets."""

    class Highlighted(Message):
        """The cursor moved to a preset (the plan follows it)."""

        def __init__(self, config: RunConfig) -> None:
            super().__init__()
            self.config = config

    class Chosen(Message):
        """A preset was chosen with Enter or a digit."""

        def __init__(self, config: RunConfig) -> None:
            super().__init__()
            self.config = config

    def __init__(self, presets: list[RunConfig], *, initial: str | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.presets = presets
        self.initial = initial
        """The preset the cursor starts on (from --preset); the first one when None."""
        self.fits: dict[str, bool | None] = {}
        self.filter_text = ""
        self._typed = ""  # the digits typed so far (type-ahead) and when the last one came
        self._typed_at = 0.0
        self.border_title = "presets"
        self.border_subtitle = "tier · params · tok/iter"

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter presets (Enter/Esc: back to the list)", id="preset-filter", compact=True)
        yield OptionList(id="preset-options", compact=True)

    def on_mount(self) -> None:
        self.query_one("#preset-filter", Input).display = False
        self._rebuild(keep=self.initial)

    # --- what is shown ---------------------------------------------------------------------------
    @property
    def visible(self) -> list[RunConfig]:
        """The presets the filter lets through, in list order (digit N picks the Nth of these)."""
        needle = self.filter_text.lower().strip()
        if not needle:
            return list(self.presets)
        return [p for p in self.presets
                if needle in p.name.lower() or needle in p.vram_tier.lower() or needle in p.description.lower()]

    def _rebuild(self, keep: str | None = None) -> None:
        options = self.query_one("#preset-options", OptionList)
        keep = keep or self.highlighted_name
        shown = self.visible
        width = max((len(p.name) for p in self.presets), default=8)
        digits = len(str(len(shown)))
        options.clear_options()
        options.add_options([Option(preset_row(i + 1, p, self.fits.get(p.name), width, digits), id=p.name)
                             for i, p in enumerate(shown)])
        self.border_title = (f"presets · filter “{self.filter_text.strip()}”: {len(shown)} of {len(self.presets)} "
                             "(Esc clears)" if self.filter_text.strip() else "presets")
        names = [p.name for p in shown]
        if shown:
            options.highlighted = names.index(keep) if keep in names else 0
        elif self.filter_text.strip():  # never an empty list without a word: say why, and the way back
            options.add_option(Option(Text(f"no preset matches “{self.filter_text.strip()}”: Esc clears the "
                                           "filter", style="italic"), disabled=True))

    def set_fits(self, fits: dict[str, bool | None]) -> None:
        """Marks from the planner: name -> True (fits the card), False (too big), None (unknown)."""
        self.fits = dict(fits)
        self._rebuild()

    @property
    def highlighted_name(self) -> str | None:
        options = self.query_one("#preset-options", OptionList)
        option = options.highlighted_option
        return option.id if option is not None else None

    def config_named(self, name: str) -> RunConfig | None:
        return next((p for p in self.presets if p.name == name), None)

    # --- keys the screen forwards --------------------------------------------------------------
    def jump_to(self, number: int) -> RunConfig | None:
        """Digit key: move the cursor to the Nth visible preset (1-based); None when there is none.

        The plan follows the cursor; Enter then chooses it and moves on to the data."""
        shown = self.visible
        if not 1 <= number <= len(shown):
            return None
        self.query_one("#preset-options", OptionList).highlighted = number - 1
        return shown[number - 1]

    def type_digit(self, digit: str, now: float | None = None) -> RunConfig | None:
        """A digit key: the row of that number, or with the digit typed just before it (within
        TYPE_AHEAD_SECONDS) the row of both (1, 2: the 12th) when there is one; 0 alone is the 10th."""
        now = time.monotonic() if now is None else now
        joined = self._typed + digit if now - self._typed_at <= TYPE_AHEAD_SECONDS else ""
        self._typed_at = now
        count = len(self.visible)
        if joined and 1 <= int(joined) <= count:
            self._typed = joined
            return self.jump_to(int(joined))
        self._typed = digit
        return self.jump_to(10 if digit == "0" else int(digit))

    def move_to(self, name: str) -> bool:
        """Put the cursor on the preset called `name` when it is shown (the plan follows); whether it was."""
        names = [p.name for p in self.visible]
        if name not in names:
            return False
        self.query_one("#preset-options", OptionList).highlighted = names.index(name)
        return True

    def open_filter(self) -> None:
        box = self.query_one("#preset-filter", Input)
        box.display = True
        self.call_after_refresh(box.focus)  # a widget that was hidden takes focus once laid out

    def focus_list(self) -> None:
        self.query_one("#preset-options", OptionList).focus()

    # --- events -------------------------------------------------------------------------------------
    def on_resize(self) -> None:
        # The list shrinks when the runs to continue appear below it: keep the cursor's row in view.
        self.query_one("#preset-options", OptionList).scroll_to_highlight()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "preset-filter":
            event.stop()
            self.filter_text = event.value
            self._rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "preset-filter":
            event.stop()
            self._close_filter()

    def key_escape(self) -> None:
        """Esc cancels the filter, from its box or from the list: every preset again, the cursor kept."""
        box = self.query_one("#preset-filter", Input)
        if box.has_focus or self.filter_text:
            box.value = ""  # Input.Changed follows: the list is rebuilt with every preset
            self.filter_text = ""
            self._rebuild()
            self._close_filter()

    def _close_filter(self) -> None:
        box = self.query_one("#preset-filter", Input)
        if not box.value:
            box.display = False
        self.focus_list()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        config = self.config_named(event.option.id or "")
        if config is not None:
            self.post_message(self.Highlighted(config))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        config = self.config_named(event.option.id or "")
        if config is not None:
            self.post_message(self.Chosen(config))
