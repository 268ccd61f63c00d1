"""`fwtui compare RUN RUN...`: loss curves of several runs overlaid (fwtui.screens.compare).

RUN is a run directory, its events.jsonl, or a nanoGPT stdout log (as `fwtui view` reads them). Each run is
read once when the app opens; a run that cannot be read stops with one line naming it.
"""

from __future__ import annotations

import argparse

from trainer.errors import FwtuiError


def main(args: argparse.Namespace) -> int:
    from fwtui.screens.compare import CompareApp, load_compared

    if len(args.runs) < 1:
        raise FwtuiError("name at least one run to compare: `fwtui compare RUN RUN...` (`fwtui runs` lists them)")
    runs = [load_compared(path) for path in args.runs]
    CompareApp(runs).run()
    return 0
