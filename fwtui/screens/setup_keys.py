"""The setup screen's keys that move around it (a mixin of SetupScreen): `r` to the runs to continue, `n`
the GPU count, `/` the preset filter, digits a preset by its number, `g`/`G` a card of the table to plan for
(this machine -> each card -> this machine, either way round), `?` this screen's help.

The keys that start something (`t` start, `d` demo corpus) stay with the screen, beside what they start.
"""

from __future__ import annotations

from typing import Any

from fwtui.screens.help import SETUP_KEYS, HelpModal
from fwtui.widgets.gpu_choice import GpuChoice, cuda_visible
from fwtui.widgets.preset_list import PresetList
from fwtui.widgets.run_list import RunList
from trainer.plan.target import next_card


class SetupKeys:
    gpus: list[Any] | None
    plan_for: Any

    def action_plan_for(self, backwards: bool = False) -> None:
        self.plan_for = card = next_card(self.plan_for.name if self.plan_for else None, backwards=backwards)
        self.notify(f"plan for the {card.name} (estimates; g: next card, G: previous)" if card
                    else "plan for this machine")
        fits_for = card or (self.gpus[0] if self.gpus else None)  # no card and no GPU: no marks
        self.compute_fits(fits_for) if fits_for else self.query_one(PresetList).set_fits({})
        self.refresh_plan()

    def action_continue_run(self) -> None:
        """`r`: on the run list, continue the highlighted run; elsewhere, go to the list."""
        runs = self.query_one(RunList)
        if not runs.choices:
            self.notify("no run to continue: none in the runs directory has a checkpoint and iterations left")
        elif runs.has_focus and runs.highlighted_choice is not None:
            self._continue(runs.highlighted_choice)
        else:
            runs.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # no choice with 0 or 1 GPU: `n` stays off the footer
        return action != "choose_gpus" or cuda_visible(self.gpus or []) > 1

    def action_choose_gpus(self) -> None:
        self.query_one(GpuChoice).focus()

    def action_filter(self) -> None:
        self.query_one(PresetList).open_filter()

    def action_preset(self, digit: str) -> None:
        self.query_one(PresetList).type_digit(digit)

    def action_help(self) -> None:
        self.app.push_screen(HelpModal(keys=SETUP_KEYS, title="keys of the setup screen"))
