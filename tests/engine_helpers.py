"""What the engine tests share: a sink that records events, and a tiny Trainer run to its end."""

from __future__ import annotations

from trainer.observe import events as ev
from trainer.train.loop import Trainer

from tests.tiny_trainer_child import tiny


class Recorder:
    """A sink keeping every event; `on_step(step)` may act (a control from 'another face')."""

    def __init__(self, on_step=None):
        self.events: list[ev.Event] = []
        self.on_step = on_step

    def __call__(self, event):
        self.events.append(event)
        if self.on_step is not None and isinstance(event, ev.Step):
            self.on_step(event)

    def of(self, cls):
        return [e for e in self.events if isinstance(e, cls)]


def train(data, run_dir, config=None, controls=None, on_step=None, **kw) -> tuple[Recorder, Trainer, str]:
    rec = Recorder(on_step)
    trainer = Trainer(config or tiny(), data, run_dir, sink=rec, controls=controls, **kw)
    reason = trainer.run()
    return rec, trainer, reason
