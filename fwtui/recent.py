"""Recently used data paths and the last preset started, so the setup screen can offer them again.

Kept as a JSON list in $XDG_STATE_HOME/fwtui/recent.json (else ~/.local/state/fwtui/recent.json),
newest first, and the preset's name in last-preset.json beside it. A missing or unreadable file is an empty
list (no preset): this is a convenience, never an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MAX_RECENT = 8


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fwtui"


def recent_path() -> Path:
    return state_dir() / "recent.json"


def load_recent(existing_only: bool = True) -> list[str]:
    """Recent data paths, newest first; with existing_only, those still on disk."""
    try:
        items = json.loads(recent_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(items, list):
        return []
    paths = [p for p in items if isinstance(p, str)]
    if existing_only:
        paths = [p for p in paths if Path(p).exists()]
    return paths[:MAX_RECENT]


def remember(path: str | Path) -> None:
    """Put `path` (made absolute) first in the recent list; failures to write are ignored."""
    text = str(Path(path).expanduser().resolve())
    items = [text] + [p for p in load_recent(existing_only=False) if p != text]
    _write(recent_path(), items[:MAX_RECENT])


def last_preset_path() -> Path:
    return state_dir() / "last-preset.json"


def remember_preset(name: str) -> None:
    """The preset a run was started with: the setup screen starts on it next time."""
    _write(last_preset_path(), {"preset": name})


def last_preset() -> str | None:
    """The name of the preset the last run was started with, or None."""
    try:
        value = json.loads(last_preset_path().read_text(encoding="utf-8")).get("preset")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _write(target: Path, value: object) -> None:
    """Write JSON whole (a temporary file renamed over the old one); failures to write are ignored."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=0), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        pass
