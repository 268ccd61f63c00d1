"""The dashboard keys that ask the trainer for work at the next step boundary: `e` evaluate, `c` checkpoint,
`h` HellaSwag (a mixin of DashboardScreen, which keeps `controls` and `run_over`).

Each goes through `controls` (trainer.train.controls.Controls in this process, the control-channel client
for `fwtui attach`); a replay has none and says so; a run that is over has nothing to ask.
"""

from __future__ import annotations

from typing import Any

NOT_IN_REPLAY = "not available in a replay (this view only reads events.jsonl)"


class RunRequests:
    controls: Any
    run_over: bool

    def _controls_or_say(self) -> Any:
        if self.controls is None:
            self.notify(NOT_IN_REPLAY, severity="warning")
        elif self.run_over:
            self.notify("the run is over: nothing to ask it", severity="warning")
            return None
        return self.controls

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
