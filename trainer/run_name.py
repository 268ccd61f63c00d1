"""What a run may be called: `name` becomes the run directory `runs/NAME-YYYYmmdd-HHMMSS`, so it must be one
plain path component (issue 23: `--set name=../../x` once put a run outside runs/)."""

from __future__ import annotations

MAX_NAME_CHARS = 100
"""A run directory is named `NAME-YYYYmmdd-HHMMSS`: 100 characters leave room under the 255-byte file name limit."""


def run_name_problem(name: str) -> str:
    """Why `name` cannot name a run directory under runs/ ('' when it can): it must be one path component,
    so `--set name=../../x` or `name=/etc` never puts a run outside runs/."""
    rule = "must be a plain name such as my-run (no / or \\, not . or .., no control characters)"
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        return rule + "; it names the run directory under runs/"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return rule
    if len(name) > MAX_NAME_CHARS:
        return f"must be at most {MAX_NAME_CHARS} characters (it names the run directory)"
    return ""


__all__ = ["MAX_NAME_CHARS", "run_name_problem"]
