"""`fwtui train --preset NAME --data PATH [--out RUN] [--set k=v ...] [--resume] [--auto-batch]`: headless.

Prints a line per log interval; Ctrl-C, SIGTERM or SIGHUP stop at the next step boundary with a
checkpoint. `--resume` continues RUN with RUN/config.toml's settings and data; `--set` changes only what it
names (trainer.runs.launch.resolve_config), and a changed learning-rate schedule prints a warning line with the
rate at the resume iteration before and after. Exit status 0 when the run completed or was stopped; a FwtuiError is one line and status 2
(printed by fwtui.cli).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fwtui.headless import HeadlessPrinter


def main(args: argparse.Namespace) -> int:
    from trainer.train.controls import Controls
    from trainer.observe.events import Finished
    from trainer.runs.launch import RunRequest, run_training
    from trainer.train.signals import stop_on_signals

    printer = HeadlessPrinter()
    outcome: dict[str, str] = {}

    def sink(event) -> None:
        if isinstance(event, Finished):
            outcome["reason"] = event.reason
        printer(event)

    request = RunRequest(preset=args.preset, data=args.data, out=Path(args.out) if args.out else None,
                         overrides=list(args.overrides), resume=args.resume, peak_tflops=args.peak_tflops,
                         auto_batch=args.auto_batch)
    controls = Controls()
    with stop_on_signals(controls, notify=printer.note):
        run_dir = run_training(request, sink, controls)
    printer.finished_hint(run_dir, outcome.get("reason"))
    return 0
