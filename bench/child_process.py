"""A bench script's measurement in a fresh process: `python SCRIPT --child ARGS...` with the checkout on
PYTHONPATH, whose last stdout line is a JSON object of figures. A fresh process gives each measurement its own
peak RSS (resource.getrusage) and start-up, as a user's command has them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(script: str | Path, *args: str) -> dict:
    """The figures `script --child ARGS` printed last; a failed child ends the bench with its stderr."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, str(script), "--child", *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"child {args[0]} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])
