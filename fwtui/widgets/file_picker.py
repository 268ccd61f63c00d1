"""The parquet picker: a path input, a directory tree of folders and .parquet files, and recent files.

When no parquet file is in reach (none under the current directory within a few levels, and no recent
file), it offers the demo corpus instead: the screen builds it on `d` or the button. A picked file or
folder with sibling shards lists them (ShardList: sizes and token counts; space ticks several), and
"fetch FineWeb" downloads shards from the hub (screens.fetch) and picks them.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Button, DirectoryTree, Input, OptionList, Static
from textual.widgets.option_list import Option

from fwtui.widgets.shard_list import DATA_SUFFIXES, ShardList

SCAN_DEPTH = 3
"""Folder levels below the start directory searched for a parquet file (the tree shows them all)."""
SCAN_MAX_DIRS = 2000
"""Folders looked into at most, so a huge home directory never stalls the scan."""


def find_parquet(root: Path, max_depth: int = SCAN_DEPTH, max_dirs: int = SCAN_MAX_DIRS) -> Path | None:
    """The first .parquet file under `root` within `max_depth` levels (hidden folders skipped), or None."""
    queue: list[tuple[Path, int]] = [(root, 0)]
    seen = 0
    while queue and seen < max_dirs:
        folder, depth = queue.pop(0)
        seen += 1
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_file() and entry.name.endswith(".parquet"):
                    return Path(entry.path)
                if entry.is_dir(follow_symlinks=False) and depth < max_depth:
                    queue.append((Path(entry.path), depth + 1))
            except OSError:
                continue
    return None


def data_path_problem(text: str) -> str | None:
    """Why `text` cannot be used as training data, in one line; None when it can (file, folder, glob, or
    several of them joined by os.pathsep, as ticked files are)."""
    text = text.strip()
    if not text:
        return "type a path to a .parquet file, a folder of them, or a glob"
    if os.pathsep in text and not Path(text).expanduser().exists():
        parts = [part for part in text.split(os.pathsep) if part.strip()]
        return next((problem for problem in map(data_path_problem, parts) if problem), None)
    path = Path(text).expanduser()
    if any(ch in text for ch in "*?["):
        return None if glob.glob(str(path)) else f"{text}: the glob matches no file"
    if not path.exists():
        return f"{text}: no such file or folder; check the path or pick one in the tree"
    if path.is_file() and path.suffix not in (*DATA_SUFFIXES, ".bin"):
        return f"{text}: not a .parquet file; pick a FineWeb parquet shard"
    return None


def recent_row(path: str) -> Text:
    """`000_00000.parquet  ~/data/fineweb/sample/10BT`: the file's name first (what tells two apart), then its
    folder, home as ~; one line, cut at the right edge (app.tcss), never wrapped mid-name."""
    where = Path(path)
    folder = str(where.parent)
    home = str(Path.home())
    if folder == home or folder.startswith(home + os.sep):
        folder = "~" + folder[len(home):]
    row = Text(no_wrap=True, overflow="ellipsis")
    row.append(where.name or path)
    row.append(f"  {folder}", style="dim")
    return row


class ParquetTree(DirectoryTree):
    """A DirectoryTree showing only folders (not hidden) and .parquet files.

    Plain-text icons: emoji widths differ between terminals, which garbles lines over SSH."""

    ICON_NODE = "▸ "
    ICON_NODE_EXPANDED = "▾ "
    ICON_FILE = "  "

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths
                if not p.name.startswith(".") and (p.suffix in DATA_SUFFIXES or _is_dir(p))]


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


class FilePicker(Vertical):
    """Path input + tree + recent list; posts Picked(path) when a usable path is chosen."""

    class Picked(Message):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

    class DemoRequested(Message):
        """The user asked for the demo corpus (the button)."""

    class ScanDone(Message):
        """The background scan finished; `found` is a parquet file under the root, or None."""

        def __init__(self, found: Path | None) -> None:
            super().__init__()
            self.found = found

    def __init__(self, root: Path, recent: list[str], *, token_counts=None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.root = root
        self.recent = recent
        if token_counts is None:
            from fwtui.screens.token_counts import TokenCounts

            token_counts = TokenCounts()
        self.token_counts = token_counts
        self.border_title = "data"
        self.border_subtitle = "Enter picks · space ticks shards · d demo"
        self.scanned = False
        """True once the background scan for parquet files has answered (tests wait on it)."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="path to .parquet, folder or glob", id="data-path", compact=True)
        yield Static("", id="data-problem", classes="problem")
        yield Static("No parquet file here or in your recent files: press d to build a demo corpus "
                     "from Python's own docstrings (nothing to download).", id="demo-offer")
        yield Button("demo corpus (d)", id="demo-button", compact=True)
        yield Button("fetch FineWeb…", id="fetch-button", compact=True)
        yield ParquetTree(self.root, id="data-tree")
        yield ShardList(self.token_counts, id="data-shards")
        yield OptionList(*[Option(recent_row(p), id=p) for p in self.recent], id="data-recent", compact=True)

    def on_mount(self) -> None:
        self.query_one("#data-problem").display = False
        self.query_one("#data-recent").display = bool(self.recent)
        self.query_one("#data-recent").border_title = "recent"
        self.query_one(ShardList).display = False
        self.set_demo_offer(False)
        if not self.recent:
            self.scan()

    @work(thread=True, exclusive=True, group="parquet-scan")
    def scan(self) -> None:
        """Look for any parquet file under the root (a worker: a big tree must not stall the screen)."""
        self.post_message(self.ScanDone(find_parquet(self.root)))

    def on_file_picker_scan_done(self, event: ScanDone) -> None:
        event.stop()
        self.scanned = True
        # offered only while no data is chosen: under the demo path it would contradict it
        self.set_demo_offer(event.found is None and not self.recent and not self.path_text)

    def demo_chosen(self, path: str, built: bool) -> str:
        """Put the demo corpus in the input (the offer goes); the line saying what `d` did."""
        self.set_demo_offer(False)
        self.set_path(path)
        how = "built just now" if built else "built before, reused"
        return (f"data: the demo corpus, {path} ({how}; a FineWeb-schema parquet of Python's own docstrings, "
                "one per Python version)")

    def set_demo_offer(self, show: bool) -> None:
        self.query_one("#demo-offer").display = show
        self.query_one("#demo-button").display = show

    @property
    def demo_offered(self) -> bool:
        return bool(self.query_one("#demo-offer").display)

    @property
    def path_text(self) -> str:
        return self.query_one("#data-path", Input).value.strip()

    def set_path(self, path: str, announce: bool = True) -> bool:
        """Put `path` in the input and check it; post Picked when usable. Returns whether it is usable."""
        self.query_one("#data-path", Input).value = path
        usable = self._check(path, announce)
        self._list_shards(path if usable else "")
        return usable

    def _list_shards(self, text: str) -> None:
        """A folder: its files, all ticked; a file (or ticked files) of a folder: their folder, those ticked."""
        shards = self.query_one(ShardList)
        parts = [Path(p).expanduser() for p in text.split(os.pathsep) if p.strip()] if text else []
        if len(parts) == 1 and parts[0].is_dir():
            shards.show(parts[0])
        elif parts and all(p.is_file() and p.parent == parts[0].parent for p in parts):
            shards.show(parts[0].parent, ticked=parts)
        else:
            shards.display = False

    def on_shard_list_chosen(self, event: ShardList.Chosen) -> None:
        event.stop()
        self.query_one("#data-path", Input).value = event.spec
        if event.spec:
            self._check(event.spec)
        else:
            line = self.query_one("#data-problem", Static)
            line.update("no file ticked: tick one or more with space")
            line.display = True

    def _check(self, text: str, announce: bool = True) -> bool:
        problem = data_path_problem(text)
        line = self.query_one("#data-problem", Static)
        line.update(problem or "")
        line.display = problem is not None
        if problem is None and announce:
            self.post_message(self.Picked(text.strip()))
        return problem is None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "data-path":
            event.stop()
            self.set_path(event.value)

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.set_path(str(event.path))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "data-recent":
            event.stop()
            self.set_path(event.option.id or "")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "demo-button":
            event.stop()
            self.post_message(self.DemoRequested())
        elif event.button.id == "fetch-button":
            event.stop()
            self.open_fetch()

    def open_fetch(self) -> None:
        """The fetch dialog; the shards it brings are picked (and listed, ticked) when it closes."""
        from fwtui.screens.fetch import FetchScreen

        def fetched(spec: str | None) -> None:
            if spec:
                self.set_path(spec)

        self.app.push_screen(FetchScreen(), fetched)
