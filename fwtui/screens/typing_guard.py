"""Letters typed at a screen of one-key commands, as if it were a shell, must not run its commands.

A newcomer who thought the app had closed typed a shell line into the setup screen: its `d` built the demo
corpus and its `t` started a run. People press a command key alone; a line typed in the wrong place is mostly
letters that are no command here. So after such a letter (or an Enter among them), the screen's command keys
and Enter do nothing for TYPING_GUARD_SECONDS, and one notice says why; `q` still quits. Keys that an input
field takes never reach the screen, so typing a path or a filter is not affected.
"""

from __future__ import annotations

import time

from textual import events

TYPING_GUARD_SECONDS = 1.5
"""How long after a letter that is no command the command keys are ignored: longer than the gap between two
keys typed in a word, shorter than reading the screen before pressing `t` on purpose."""

ALWAYS = frozenset({"q", "ctrl+q", "ctrl+c", "escape", "tab", "shift+tab", "up", "down", "left", "right"})
"""Keys acted on even among typed letters: quitting and moving about are always safe."""


class TypingGuard:
    """A mixin for a Screen with one-key BINDINGS: swallows its command keys while the user seems to type."""

    _typed_at = float("-inf")  # time.monotonic() of the last letter that is no command here
    _typing_noticed = False

    def _command_keys(self) -> set[str]:
        keys: set[str] = set()
        for binding in getattr(self, "BINDINGS", ()):
            keys.update(k.strip() for k in binding.key.split(","))  # type: ignore[union-attr]
        return keys

    @property
    def typing(self) -> bool:
        """True while keys come among letters that are no command here."""
        return time.monotonic() - self._typed_at < TYPING_GUARD_SECONDS

    def on_key(self, event: events.Key) -> None:
        if event.key in ALWAYS:
            return
        command = event.key in self._command_keys() or event.key == "enter"
        if not command:
            if event.is_printable:
                self._typed_at = time.monotonic()
            return
        if self.typing:
            self._typed_at = time.monotonic()  # the line goes on: so does the guard
            event.stop()
            event.prevent_default()
            if not self._typing_noticed:
                self._typing_noticed = True
                self.notify(f"{event.key!r} ignored: it came among typed letters, not on its own (keys here are "
                            "commands: t starts a run, q quits)", severity="warning", timeout=6)  # type: ignore[attr-defined]
            return
        self._typing_noticed = False
