"""RUN/events.jsonl in and out: a header line with the schema version, then one event a line.

The writer flushes every line as written, so another process (`fwtui attach`, `fwtui runs`) sees a live
run; the reader skips a torn last line (a writer killed mid-line) and lines of kinds it does not know.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from trainer.events import SCHEMA_VERSION, Event, event_from_dict

EVENTS_FILE = "events.jsonl"
HEADER = {"schema": "fwtui.events", "version": SCHEMA_VERSION}


class EventLogWriter:
    """A sink appending events to RUN/events.jsonl (owner-only), flushed line by line.

    On resume the same file is appended to; the header is written only when the file is new.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / EVENTS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)  # line-buffered
        if self.path.stat().st_size == 0:
            self._file.write(json.dumps(HEADER) + "\n")
        elif not _ends_with_newline(self.path):
            # A writer killed mid-line (or a full disk) left a torn last line: end it, so this run's first
            # event is not glued to it and lost; the reader skips the torn line alone.
            self._file.write("\n")

    def __call__(self, event: Event) -> None:
        if not self._file.closed:
            self._file.write(event.to_json() + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def parse_line(line: str) -> Event | None:
    """One log line as an event; None for the header, a blank or torn line, or an unknown kind."""
    line = line.strip()
    if not line:
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or "schema" in data:
        return None
    try:
        return event_from_dict(data)
    except TypeError:  # a line missing required fields
        return None


def read_events(path: str | Path) -> list[Event]:
    """Every event of a log file (or of RUN/events.jsonl when given a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / EVENTS_FILE
    with open(path, encoding="utf-8", errors="replace") as f:
        return [e for e in map(parse_line, f) if e is not None]


class EventLogFollower:
    """Reads new complete lines of a growing events.jsonl each time `poll()` is called (for attach)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.path = path / EVENTS_FILE if path.is_dir() else path
        self._offset = 0
        self._partial = ""

    def poll(self) -> list[Event]:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                f.seek(self._offset)
                chunk = f.read()
                self._offset = f.tell()
        except FileNotFoundError:
            return []
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()  # an unterminated last line waits for its end
        return [e for e in map(parse_line, lines) if e is not None]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.poll())
