"""The setup screen's dataset token counts: one count per data path at a time, each result kept.

Every preset highlight asks for a new plan, and a plan needs the dataset's token count (parquet metadata,
and for files without FineWeb's token_count column a sample tokenized: seconds on a large folder). The plan
workers are superseded at each highlight, but a thread cannot be stopped mid-count, so before this a new
count started at every highlight while the last one still ran. Here the first request for a path counts and
every later request for the same path waits for that count (its result serves every preset); a request for
another path starts that path's count and leaves the old one to finish into the cache unwaited for.

Results are kept per path identity: the resolved path with its modification time and size, so a file that
changes on disk is counted again, and a glob is known by its text.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

WAIT_POLL_SECONDS = 0.1
"""How often a request waiting on another's count checks whether it was cancelled (a superseded plan)."""

Counter = Callable[[str, str], Any]
"""Counts one data path's text column: returns a trainer.data.token_count.TokenCount, raises on a bad path or
a missing column."""


def path_identity(path: str) -> tuple:
    """What a count is cached under: (resolved path, mtime in ns, size in bytes), or the text of a glob."""
    p = Path(path).expanduser()
    try:
        stat = p.stat()
    except OSError:  # a glob, or a path that is gone: known by what was typed
        return (str(p.absolute()),)
    return (str(p.resolve()), stat.st_mtime_ns, stat.st_size)


def input_files(path: str) -> list[str]:
    """The data files `path` stands for (trainer.data.parquet_source.resolve_paths), or [path] as it is
    when it names none (a prepared directory, a bad path: the counter then says why)."""
    from trainer.data.parquet_source import resolve_paths
    from trainer.errors import FwtuiError

    try:
        return [str(p) for p in resolve_paths([path])]
    except (FwtuiError, OSError):
        return [path]


COUNT_NICENESS = 10
"""How much lower the counting thread's CPU priority is (Linux nice, per thread); the UI thread keeps its own."""


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COUNT_NICENESS)  # this thread only (Linux)
    except (AttributeError, OSError):
        pass  # not Linux, or not allowed: counting still runs, at the usual priority


def count_with_ingest(path: str, text_column: str = "text") -> Any:
    """trainer.data.token_count.count_tokens of one path, imported when first needed (pyarrow stays out of the
    screen's start)."""
    from trainer.data.token_count import count_tokens

    return count_tokens([path], text_column=text_column)


class _Count:
    def __init__(self) -> None:
        self.done = threading.Event()  # set once `result` is there
        self.result: Any = None


class TokenCounts:
    """`get(path)` from any worker thread: the path's TokenCount, or a one-line reason it could not be counted."""

    def __init__(self, counter: Counter = count_with_ingest) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._counter = counter
        self._lock = threading.Lock()
        self._counts: dict[tuple, _Count] = {}
        # Counting runs on one thread of its own at a lower CPU priority: on a busy machine the scheduler then
        # gives the UI thread its turn first, so reading fifteen shards' columns holds up no frame.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fwtui-count", initializer=_lower_priority)

    def get(self, path: str, cancelled: Callable[[], bool] = lambda: False, text_column: str = "text") -> Any:
        """Blocks until the count is there. Returns the TokenCount, a str (why it failed: a missing text
        column too), or None when `cancelled()` turned true while waiting for a count another request runs.

        Several files (a folder, a glob, ticked files joined by os.pathsep) are counted file by file and
        summed, so each file is read once whatever selection it is part of (the picker's list counts them)."""
        files = input_files(path)
        if len(files) > 1:
            counts = []
            for file in files:
                counted = self.get_one(file, cancelled, text_column)
                if counted is None or isinstance(counted, str):
                    return counted
                counts.append(counted)
            from trainer.data.token_count import combine

            return combine(counts)
        return self.get_one(path, cancelled, text_column)

    def get_one(self, path: str, cancelled: Callable[[], bool] = lambda: False, text_column: str = "text") -> Any:
        """get() of one path as the counter sees it (no splitting into files)."""
        key = (*path_identity(path), text_column)
        with self._lock:
            count = self._counts.get(key)
            mine = count is None
            if mine:
                count = self._counts[key] = _Count()
        if mine:
            self._pool.submit(self._count, count, path, text_column)
        while not count.done.wait(WAIT_POLL_SECONDS):
            if cancelled():
                return None
        return count.result

    def _count(self, count: _Count, path: str, text_column: str) -> None:
        try:
            count.result = self._counter(path, text_column)
        except Exception as err:  # noqa: BLE001 - any failure is a line on the plan, never a crash
            count.result = str(err) or type(err).__name__
        finally:
            count.done.set()  # waiters never hang, whatever the counter did

    def known_problem(self, path: str, text_column: str = "text") -> str | None:
        """Why `path` could not be counted, when a finished count said so (a missing text column, a file that
        is no parquet); None when it counted, or its count has not finished."""
        for file in input_files(path):
            with self._lock:
                count = self._counts.get((*path_identity(file), text_column))
            if count is not None and count.done.is_set() and isinstance(count.result, str):
                return count.result
        return None
