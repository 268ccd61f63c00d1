"""`fwtui serve RUN [--host 127.0.0.1] [--port N]`: the attach view in a browser, through textual-serve.

Each browser tab starts its own `fwtui attach RUN`: a viewer of the run, never a new run. A viewer can
steer the run (sample, pause, checkpoint, stop) and textual-serve has no login, so the server listens on
127.0.0.1 unless told otherwise; reach it from your laptop with `ssh -L 8000:127.0.0.1:8000 HOST`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from fwtui.commands.attach import events_path
from trainer.errors import FwtuiError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def attach_command(run: Path) -> str:
    """The shell command each tab runs: this Python, this fwtui, `attach` on the run's absolute path."""
    return f"{shlex.quote(sys.executable)} -m fwtui.cli attach {shlex.quote(str(run.resolve()))}"


def main(args: argparse.Namespace) -> int:
    run = events_path(args.run).parent
    try:
        from textual_serve.server import Server
    except ImportError:
        raise FwtuiError("textual-serve is not installed; `pip install textual-serve` "
                         "(or install fwtui with its `serve` extra)") from None
    if args.host not in LOOPBACK:
        print(f"fwtui: warning: listening on {args.host}: anyone who can reach port {args.port} can stop or "
              "steer this run (there is no login); prefer the default 127.0.0.1 with an SSH tunnel",
              file=sys.stderr)
    print(f"fwtui: serving {run} at http://{args.host}:{args.port} (each tab is a viewer; Ctrl-C stops "
          "serving, not the run)", flush=True)
    Server(attach_command(run), host=args.host, port=args.port, title=f"fwtui · {run.name}").serve()
    return 0
