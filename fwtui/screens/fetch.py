"""The "fetch FineWeb" dialog of the data panel: dataset, subset and shard count, then the download's progress.

A thread worker runs the engine (trainer.data.hub_files.plan_fetch, trainer.data.hub_fetch.fetch) and posts
what it learns: the listing, a progress report a few times a second, the result or one line of error. The
dialog answers the data path of the shards (dismissed with it, the picker selects and lists them), or None.
Esc during a download stops it at the next chunk; its .incomplete file stays and the next fetch continues it.
"""

from __future__ import annotations

import threading

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, Select, Static

from fwtui import format as fmt

DATASET_CHOICES = [("fineweb", "fineweb"), ("fineweb-edu", "fineweb-edu")]


class FetchScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    FetchScreen { align: center middle; }
    FetchScreen > Vertical {
        width: 76; max-width: 98%; height: auto; max-height: 98%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    FetchScreen .fetch-row { height: auto; }
    FetchScreen .fetch-label { width: 10; padding-top: 0; color: $text-muted; }
    FetchScreen Input, FetchScreen Select { width: 1fr; }
    FetchScreen #fetch-status { height: auto; max-height: 8; }
    FetchScreen ProgressBar { height: 1; display: none; }
    FetchScreen.-downloading ProgressBar { display: block; }
    FetchScreen #fetch-buttons { height: auto; align-horizontal: right; }
    FetchScreen Button { margin-left: 1; }
    """

    BINDINGS = [Binding("escape", "close", "stop / close")]
    AUTO_FOCUS = "#fetch-shards"

    class Listed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Progress(Message):
        def __init__(self, report) -> None:
            super().__init__()
            self.report = report

    class Ended(Message):
        def __init__(self, spec: str | None, error: str | None) -> None:
            super().__init__()
            self.spec = spec
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.cancel = threading.Event()
        self.busy = False
        self.result_spec: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("fetch FineWeb from the hub (HF_ENDPOINT for a mirror)", id="fetch-title")
            with Horizontal(classes="fetch-row"):
                yield Label("dataset", classes="fetch-label")
                yield Select(DATASET_CHOICES, value="fineweb", allow_blank=False, id="fetch-dataset", compact=True)
            with Horizontal(classes="fetch-row"):
                yield Label("subset", classes="fetch-label")
                yield Input("sample-10BT", placeholder="sample-10BT, CC-MAIN-2013-20, …", id="fetch-subset",
                            compact=True)
            with Horizontal(classes="fetch-row"):
                yield Label("shards", classes="fetch-label")
                yield Input("1", placeholder="how many files (the first N)", id="fetch-shards", compact=True,
                            type="integer")
            with Horizontal(classes="fetch-row"):
                yield Label("into", classes="fetch-label")
                yield Input("", placeholder="a folder; empty: the hub cache (HF_HOME/hub)", id="fetch-dir",
                            compact=True)
            yield Static("", id="fetch-status", markup=False)
            yield ProgressBar(id="fetch-file", show_eta=False)
            yield ProgressBar(id="fetch-all", show_eta=False)
            with Horizontal(id="fetch-buttons"):
                yield Button("list", id="fetch-list", compact=True)
                yield Button("fetch", id="fetch-go", variant="success", compact=True)
                yield Button("close (esc)", id="fetch-close", compact=True)

    # --- what the user asked ---------------------------------------------------------------------------
    def choices(self) -> tuple[str, str, int | None, str | None] | str:
        """(dataset, subset, shards, folder), or one line saying which field is wrong."""
        dataset = str(self.query_one("#fetch-dataset", Select).value)
        subset = self.query_one("#fetch-subset", Input).value.strip() or "sample-10BT"
        text = self.query_one("#fetch-shards", Input).value.strip()
        try:
            shards = int(text) if text else None
        except ValueError:
            return f"shards: {text!r} is not a whole number"
        if shards is not None and shards < 1:
            return "shards: fetch at least 1"
        folder = self.query_one("#fetch-dir", Input).value.strip() or None
        return dataset, subset, shards, folder

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "fetch-close":
            self.action_close()
        elif not self.busy:
            self.start(listing=event.button.id == "fetch-list")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.busy:
            self.start(listing=False)

    def start(self, listing: bool) -> None:
        chosen = self.choices()
        if isinstance(chosen, str):
            self.say(chosen)
            return
        self.busy = True
        self.cancel.clear()
        self.say("asking the hub…")
        self.run_fetch(*chosen, listing=listing)

    def action_close(self) -> None:
        if self.busy:
            self.cancel.set()  # the worker stops at its next chunk and answers Ended
            self.say("stopping… (the partial file stays: fetch again to continue)")
        else:
            self.dismiss(None)

    def say(self, text: str) -> None:
        self.query_one("#fetch-status", Static).update(text)

    # --- the worker and what it posts ------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="fetch")
    def run_fetch(self, dataset: str, subset: str, shards: int | None, folder: str | None, *,
                  listing: bool) -> None:
        from trainer.data.hub_fetch import fetch
        from trainer.data.hub_files import plan_fetch
        from trainer.errors import FwtuiError

        try:
            plan = plan_fetch(dataset, subset=subset, shards=shards)
            self.post_message(self.Listed(listing_text(plan)))
            if listing:
                self.post_message(self.Ended(None, None))
                return
            result = fetch(plan, folder, progress=lambda p: self.post_message(self.Progress(p)), cancel=self.cancel)
            self.post_message(self.Ended(result.spec, None))
        except FwtuiError as err:
            self.post_message(self.Ended(None, str(err)))
        except Exception as err:  # noqa: BLE001 - never a traceback in the app: one line
            self.post_message(self.Ended(None, f"{type(err).__name__}: {err}"))

    def on_fetch_screen_listed(self, event: Listed) -> None:
        self.say(event.text)

    def on_fetch_screen_progress(self, event: Progress) -> None:
        p = event.report
        file_bar, all_bar = self.query_one("#fetch-file", ProgressBar), self.query_one("#fetch-all", ProgressBar)
        self.add_class("-downloading")
        file_bar.update(total=max(p.file_total, 1), progress=p.file_done)
        all_bar.update(total=max(p.total, 1), progress=p.done)
        self.say(f"file {p.index}/{p.count} {p.file}\n{fmt.data_size(p.file_done)} of {fmt.data_size(p.file_total)}"
                 f" · all {fmt.data_size(p.done)} of {fmt.data_size(p.total)} · {fmt.data_size(p.rate)}/s · "
                 f"{fmt.approx(fmt.duration(p.eta_seconds))} left")

    def on_fetch_screen_ended(self, event: Ended) -> None:
        self.busy = False
        if event.error is not None:
            self.say(event.error)
            if self.cancel.is_set():
                self.dismiss(None)
        elif event.spec is not None:
            self.result_spec = event.spec
            self.dismiss(event.spec)


def listing_text(plan) -> str:
    """What a plan holds, in a few lines: files, bytes, tokens (the repository's, or ≈ from bytes)."""
    shown = f"first {len(plan.files)} of {plan.available}" if len(plan.files) < plan.available else str(len(plan.files))
    if plan.named_tokens is not None and len(plan.files) == plan.available:
        tokens = f"{plan.named_tokens:,} tokens (the repository's count)"
    else:
        tokens = fmt.approx(f"{fmt.compact(plan.estimated_tokens)} tokens (from bytes)")
    names = ", ".join(f.path.rsplit("/", 1)[-1] for f in plan.files[:4]) + (" …" if len(plan.files) > 4 else "")
    return (f"{plan.repo} · {plan.folder}: {shown} file(s), {fmt.data_size(plan.total_bytes)} · {tokens}\n{names}")
