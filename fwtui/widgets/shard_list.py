"""The picked folder's data files, one line each with its size and token count; space ticks which to train on.

The counts come from the screen's TokenCounts (trainer.data.token_count: FineWeb's token_count column, exact,
or a labelled estimate) on a thread worker, one file after another, each line filled in as its count arrives:
a folder of fifteen 2 GB shards never holds up a frame. The plan counts a selection from the same cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual import work
from textual.message import Message
from textual.widgets import SelectionList
from textual.widgets.selection_list import Selection

from fwtui import format as fmt

DATA_SUFFIXES = (".parquet", ".arrow")


def folder_files(folder: Path) -> list[Path]:
    """The data files directly in `folder` (not hidden, not datasets' cache-*.arrow), sorted by name."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        return []
    return [p for p in entries if p.suffix in DATA_SUFFIXES and not p.name.startswith((".", "cache-"))
            and p.is_file()]


def selection_spec(folder: Path, files: list[Path], ticked: list[Path]) -> str:
    """What the ticked files are as one data path: the folder when all are ticked, the file when one, else
    the files joined by os.pathsep (trainer.data.parquet_source.split_spec reads it back)."""
    if ticked and len(ticked) == len(files) and len(files) > 1:
        return str(folder)
    return os.pathsep.join(str(p) for p in ticked)


def count_text(counted) -> str:
    """A count as the list shows it: exact, ≈ an estimate, or why there is none."""
    if counted is None:
        return "counting…"
    if isinstance(counted, str):
        return f"no count: {counted}"
    return f"{counted.tokens:,} tokens" if counted.exact else fmt.approx(f"{fmt.compact(counted.tokens)} tokens")


class ShardList(SelectionList[str]):
    """Posts Chosen(spec) when the ticks change; `spec` is "" when none is ticked."""

    class Chosen(Message):
        def __init__(self, spec: str) -> None:
            super().__init__()
            self.spec = spec

    class Counted(Message):
        def __init__(self, index: int, text: str) -> None:
            super().__init__()
            self.index = index
            self.text = text

    def __init__(self, token_counts, *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)
        self.token_counts = token_counts
        self.folder: Path | None = None
        self.files: list[Path] = []
        self.counts: dict[int, str] = {}
        """Index -> the count's text, for the files counted so far (tests and the prompt read it)."""

    def show(self, folder: Path, ticked: list[Path] | None = None) -> bool:
        """List `folder`'s data files, ticking `ticked` (None: all); False (and hidden) when it has under two."""
        files = folder_files(folder)
        if len(files) < 2:
            self.display = False
            self.folder, self.files = None, []
            return False
        chosen = {p.resolve() for p in ticked} if ticked is not None else None
        self.folder, self.files, self.counts = folder, files, {}
        with self.prevent(SelectionList.SelectedChanged):  # ticks set here are the picker's, not the user's
            self.clear_options()
            self.add_options([Selection(self._prompt(i), str(p), chosen is None or p.resolve() in chosen)
                              for i, p in enumerate(files)])
        self.display = True
        self.border_title = f"{len(files)} files · space ticks"
        self.count_files(list(files))
        return True

    def _prompt(self, index: int) -> str:
        path = self.files[index]
        try:
            size = fmt.data_size(path.stat().st_size)
        except OSError:
            size = fmt.UNKNOWN
        return f"{path.name}  {size}  {self.counts.get(index, 'counting…')}"

    @work(thread=True, exclusive=True, group="shard-counts")
    def count_files(self, files: list[Path]) -> None:
        """Each file's count in turn (the cache answers at once for a file counted before)."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        for index, path in enumerate(files):
            counted = self.token_counts.get_one(str(path), cancelled=lambda: worker.is_cancelled)
            if worker.is_cancelled:
                return
            self.post_message(self.Counted(index, count_text(counted)))

    def on_shard_list_counted(self, event: Counted) -> None:
        event.stop()
        if event.index < len(self.files):
            self.counts[event.index] = event.text
            self.replace_option_prompt_at_index(event.index, self._prompt(event.index))

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        if event.selection_list is not self:
            return
        event.stop()
        if self.folder is None:
            return
        ticked = [p for p in self.files if str(p) in set(self.selected)]
        self.post_message(self.Chosen(selection_spec(self.folder, self.files, ticked)))
