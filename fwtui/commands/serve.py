"""`fwtui serve RUN [--host 127.0.0.1] [--port N]`: the attach view in a browser, through textual-serve.

Each browser tab starts its own `fwtui attach RUN`: a viewer of the run, never a new run. A viewer can
steer the run (sample, pause, checkpoint, stop) and textual-serve has no login, so the server listens on
127.0.0.1 unless told otherwise, every URL is under a secret token printed only to the owner, and the
websocket's Origin must be this server's (fwtui/serve_guard.py). From a laptop: `ssh -L
8000:127.0.0.1:8000 HOST`, then open the printed link there.
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
        import textual_serve.server  # noqa: F401 - the optional extra; fwtui.serve_guard builds on it
        from fwtui.serve_guard import OwnerOnlyServer, new_token
    except ImportError:
        raise FwtuiError("textual-serve is not installed; `pip install textual-serve` "
                         "(or install fwtui with its `serve` extra)") from None
    if args.host not in LOOPBACK:
        print(f"fwtui: warning: listening on {args.host}: the link travels unencrypted, so anyone who sees "
              f"it on the network can stop or steer this run; prefer the default 127.0.0.1 with an SSH tunnel",
              file=sys.stderr)
    server = OwnerOnlyServer(attach_command(run), new_token(), host=args.host, port=args.port,
                             title=f"fwtui · {run.name}")
    # The link is the key: printed here, to the owner's terminal only (not in the process's arguments).
    print(f"fwtui: serving {run} at {server.link()} (this link is the key: share it with no one; each tab "
          "is a viewer; Ctrl-C stops serving, not the run)", flush=True)
    server.serve()
    return 0
