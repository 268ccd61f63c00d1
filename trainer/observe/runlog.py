"""RUN/events.jsonl in and out: a header line with the schema version, then one event a line.

The writer writes every line as it comes (no buffer), so another process (`fwtui attach`, `fwtui runs`) sees a live
run; the reader skips a torn last line (a writer killed mid-line) and lines of kinds it does not know.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from trainer.observe.events import SCHEMA_VERSION, Event, event_from_dict
from trainer.own_files import open_own

EVENTS_FILE = "events.jsonl"
HEADER = {"schema": "fwtui.events", "version": SCHEMA_VERSION}


RETRY_SECONDS = 10.0
"""After a failed write (a full disk), events are dropped for this long before the log tries again."""


class EventLogUnavailable(OSError):
    """events.jsonl is in its back-off after a failed write: this event was not written."""


class EventLogWriter:
    """A sink appending events to RUN/events.jsonl (owner-only), each line written as it comes.

    On resume the same file is appended to; the header is written only when the file is new. A failed
    write (ENOSPC, EIO) raises, so the FanOut warns the other sinks; then events are dropped for
    RETRY_SECONDS (each raising EventLogUnavailable, at no disk cost) and the next one after that tries the
    disk again. The first line after a failure starts with a newline: a half-written line stays a torn
    line of its own, which the reader skips, and never swallows the next event.
    """

    sink_name = EVENTS_FILE

    def __init__(self, run_dir: str | Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(run_dir) / EVENTS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._retry_at: float | None = None  # clock time of the next try after a failure; None while healthy
        # Never appended through a symlink someone planted, nor to a file not ours (trainer.own_files).
        self._fd: int | None = open_own(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        if os.fstat(self._fd).st_size == 0:
            self._write(json.dumps(HEADER) + "\n")
        elif not _ends_with_newline(self.path):
            # A writer killed mid-line (or a full disk) left a torn last line: end it, so this run's first
            # event is not glued to it and lost; the reader skips the torn line alone.
            self._write("\n")

    def __call__(self, event: Event) -> None:
        if self._fd is None:
            return
        line = event.to_json() + "\n"
        if self._retry_at is not None:
            if self._clock() < self._retry_at:
                raise EventLogUnavailable(f"{self.path} is not written until the retry after a failed write")
            line = "\n" + line  # end whatever the failed write left half done
        try:
            self._write(line)
        except OSError:
            self._retry_at = self._clock() + RETRY_SECONDS
            raise
        self._retry_at = None

    def _write(self, text: str) -> None:
        """All of `text` or an OSError: os.write may take part of it (a disk filling up)."""
        data = text.encode("utf-8")
        while data:
            data = data[os.write(self._fd, data):]

    def describe_failure(self, err: Exception, last_iter: int | None) -> str:
        past = f"past iter {last_iter:,}" if last_iter is not None else "from here on"
        fix = ("free disk space" if getattr(err, "errno", None) == errno.ENOSPC
               else "check the disk it is on")
        return (f"{self.path} is not being written ({_reason(err)}): `fwtui attach` and `fwtui runs` will not "
                f"see this run {past}; {fix}. Training goes on; the log tries again every "
                f"{RETRY_SECONDS:g} s")

    def describe_recovery(self, failed_at: int | None, now: int | None) -> str:
        since = f"iter {failed_at:,}" if failed_at is not None else "the start"
        again = f" from iter {now:,}" if now is not None else ""
        return f"{self.path} is written again{again}; the events from {since} until then are missing from it"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}, errno {errno.errorcode.get(err.errno, err.errno)}" if err.errno else err.strerror
    return f"{type(err).__name__}: {err}"


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


EMPTY = "is empty"
NOT_OURS = "does not start with an fwtui header (not a run log?)"


def header_problem(first_line: str | bytes) -> str:
    """'' when `first_line` is our header of a version this fwtui reads, else what is wrong, worded to follow
    the file's name ("events.jsonl is empty"): `fwtui runs`, attach, view and report all say it so."""
    if isinstance(first_line, bytes):
        first_line = first_line.decode("utf-8", errors="replace")
    first_line = first_line.strip()
    if not first_line:
        return EMPTY
    try:
        header = json.loads(first_line)
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("schema") != HEADER["schema"]:
        return NOT_OURS
    version = header.get("version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        return f"is schema version {version!r}, newer than this fwtui reads ({SCHEMA_VERSION}); upgrade fwtui"
    return ""


def is_run_log(text: str) -> bool:
    """Whether `text` starts with fwtui's header, of any version (a newer one is still ours, to refuse by name)."""
    return header_problem(text.lstrip().split("\n", 1)[0]) not in (EMPTY, NOT_OURS)


def log_problem(path: str | Path) -> str:
    """header_problem of a log file's first line (read at most 4 KB of it); OSError if it cannot be read."""
    with open(path, "rb") as f:
        return header_problem(f.readline(4096))


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
