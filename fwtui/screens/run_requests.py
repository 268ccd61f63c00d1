"""The dashboard keys that ask the trainer for work at the next step boundary: `e` evaluate, `c` checkpoint,
`h` HellaSwag (a mixin of DashboardScreen, which keeps `controls` and `run_over`), and which of the request keys
(with `s` sample and `p` pause) are offered at all.

Each goes through `controls` (trainer.train.controls.Controls in this process, the control-channel client
for `fwtui attach`); a replay has none and says so; a run that is over has nothing to ask.
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding

NOT_IN_REPLAY = "not available in a replay (this view only reads events.jsonl)"
REQUEST_ACTIONS = frozenset({"sample", "pause", "evaluate", "checkpoint", "hellaswag"})
"""The actions that ask the run for something (s p e c h)."""
NOT_NOW_BINDINGS = [Binding(key, "not_now", show=False) for key in "spech"]
"""Behind each request key (after it in BINDINGS): when check_action takes the request off, the key still
answers with one line saying why (Textual tries the next binding of a key whose action is not allowed)."""


class RunRequests:
    controls: Any
    run_over: bool

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """s p e c h are offered (in the footer, and acted on) only while there is a run to ask: not in a
        replay (`fwtui view`), not once the run has finished or failed (`attach` of a finished run)."""
        if action in REQUEST_ACTIONS and (self.controls is None or self.run_over):
            return False
        return True

    def _controls_or_say(self) -> Any:
        if self.controls is None:
            self.notify(NOT_IN_REPLAY, severity="warning")
        elif self.run_over:
            self.notify("the run is over: nothing to ask it", severity="warning")
            return None
        return self.controls

    def action_not_now(self) -> None:
        self._controls_or_say()

    def action_evaluate(self) -> None:
        controls = self._controls_or_say()
        if controls is not None:
            controls.request_eval()
            self.notify("evaluating at the next step boundary")

    def action_checkpoint(self) -> None:
        controls = self._controls_or_say()
        if controls is not None:
            controls.request_checkpoint()
            self.notify("saving a checkpoint at the next step boundary")

    def action_hellaswag(self) -> None:
        controls = self._controls_or_say()
        if controls is not None:
            controls.request_hellaswag()
            self.notify("scoring HellaSwag at the next step boundary (training waits for it)")
