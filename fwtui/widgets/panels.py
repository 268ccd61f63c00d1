"""The dashboard's text panels. Each one formats fields of the latest events; none computes a metric.

Every figure says what it is against ("of 12.0 GB", "of 58.3 TFLOP/s"); estimates carry "≈"; missing values
say "unknown". Panels read without colour: the error panel starts with "ERROR:", gauges are block characters.
"""

from __future__ import annotations

from collections import deque
from datetime import tzinfo

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual import events
from textual.widgets import RichLog, Static

from fwtui import format as fmt
from fwtui.live_clock import RunClock
from fwtui.vitals_text import vitals_lines
from trainer.observe.events import (CheckpointSaved, Eval, Failed, Finished, PrepareDone, PrepareProgress, RunStarted,
                            Sample, StateChanged, Step, Warning)
from trainer.model.formulas import format_count

LOG_LINES = 1000
"""The event log keeps this many lines (a long run logs an eval and a checkpoint every few minutes)."""


def _device_memory(run: RunStarted) -> str:
    return "" if run.device_memory_bytes is None else f", {fmt.gigabytes(run.device_memory_bytes)}"


def _devices(run: RunStarted) -> str:
    """Where the run trains: one device, or the world size and the cards ("2 × NVIDIA H100 ..., 80.0 GB
    each"; different cards are named one by one)."""
    if run.world_size <= 1:
        return f"{run.device_name}{_device_memory(run)}"
    names = run.device_names or [run.device_name]
    memory = "" if run.device_memory_bytes is None else f", {fmt.gigabytes(run.device_memory_bytes)} each"
    if len(set(names)) == 1:
        return f"{run.world_size} × {names[0]}{memory}"
    return f"{run.world_size} ranks: {' + '.join(names)}"


class Panel(Static):
    """A Static that repaints only when its text changes, and asks for a layout only when its shape does.

    Thin links (issue 5: <= 10 KB/s to the terminal): `Static.update` re-lays-out the whole screen by
    default, which repaints widgets that did not change; and an update with the same text still repaints
    the widget. `show_text` skips both. FIXED_SIZE panels (their CSS fixes width and height) never need a
    layout; the others need one when their number of lines at the current width changes (AUTO_WIDTH ones:
    when any line's length does).
    """

    FIXED_SIZE = False
    AUTO_WIDTH = False

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self._shown: Text | None = None
        self._shape: tuple | None = None
        self._title: str | None = None

    @property
    def shown(self) -> Text | None:
        """What the panel shows (None before the first show)."""
        return self._shown

    def show_text(self, content: Text | str) -> bool:
        """Show `content` (plain text, no markup); False when it is what is shown already."""
        text = content if isinstance(content, Text) else Text(content)
        if self._shown is not None and text == self._shown and text.overflow == self._shown.overflow:
            return False
        shape = self._shape_of(text)
        layout = not self.FIXED_SIZE and shape != self._shape
        self._shown, self._shape = text, shape
        self.update(text, layout=layout)
        return True

    def _shape_of(self, text: Text) -> tuple:
        if self.FIXED_SIZE:
            return ()
        if self.AUTO_WIDTH:
            return tuple(cell_len(line) for line in text.plain.split("\n"))
        width = self.content_size.width
        if width <= 0 or not self.is_mounted:
            return (None, text.plain.count("\n"))  # not laid out yet: the first layout sizes it
        return (width, len(text.wrap(self.app.console, width)))

    def set_title(self, title: str) -> None:
        """The border title, set only when it changes (setting it always repaints the whole widget)."""
        if title != self._title:
            self._title = title
            self.border_title = title


class HeaderLine(Horizontal):
    """One line: what runs where on the left, how far it got on the right."""

    class Left(Panel):
        FIXED_SIZE = True  # 1fr wide, one line high

    class Right(Panel):
        AUTO_WIDTH = True  # as wide as its text: a longer text moves the left part's edge

    def compose(self) -> ComposeResult:
        yield self.Left(id="header-left")
        yield self.Right(id="header-right")

    def show(self, *, title: str, run: RunStarted | None, step: Step | None, status: str,
             iteration: int | None = None) -> None:
        """`iteration`: where the run stands when the screen knows better than the last Step: a Progress since, the
        boundary it paused at, or Finished.iter, the iterations done when it ended (the last Step is the index of
        the last step done, one less: a completed run of 70 reads 70 / 70, not 69)."""
        parts = ["fwtui"]
        if title:
            parts.append(title)
        if run is None:
            parts.append("preparing data")
        else:
            parts.append(f"{run.config.get('name', 'custom')} ({format_count(run.params)})")
            parts.append(_devices(run))
        self.query_one("#header-left", Panel).show_text(Text(" · ".join(parts), overflow="ellipsis", no_wrap=True))
        right = ""
        if run is not None:
            done = iteration if iteration is not None else step.iter if step is not None else run.start_iter
            right = f"iter {fmt.count(done)} / {fmt.count(run.max_iters)}"
            if run.max_iters > 0:
                right += f"  {fmt.percent(done / run.max_iters)}"
        if status:
            right = f"{right} · {status}" if right else status
        self.query_one("#header-right", Panel).show_text(Text(right, no_wrap=True))


class ThroughputPanel(Panel):
    def show(self, run: RunStarted | None, step: Step | None) -> None:
        if run is None or step is None:
            self.show_text("waiting for the first step")
            return
        world = f" (all {run.world_size} ranks)" if run.world_size > 1 else ""
        lines = [f"{fmt.rate(step.tokens_per_sec, 'tok')}{world} · {fmt.seconds(step.step_seconds)}/iter"]
        if run.peak_flops is None:
            source = run.peak_flops_source or "no peak for this device"
            lines.append(f"MFU unknown ({source if 'unknown' in source.lower() else 'peak unknown: ' + source})")
        elif step.mfu is None:
            lines.append(f"MFU unknown · peak {fmt.tflops(run.peak_flops)} ({run.peak_flops_source})")
        else:
            # Step.mfu: total tokens/s ÷ world_size against one card's peak: for one kind of card, also the total
            per = "" if run.world_size <= 1 else (" per GPU and in total" if len(set(run.device_names)) <= 1
                                                  else " per GPU, against rank 0's card")
            lines.append(f"MFU {fmt.percent(step.mfu)}{per} of {fmt.tflops(run.peak_flops)} ({run.peak_flops_source})")
        grad = "" if step.grad_norm is None else f" · grad norm {step.grad_norm:.2f}"
        lines.append(f"lr {step.lr:.2e}{grad} · {run.precision}{' · compiled' if run.compiled else ''}")
        self.show_text(Text("\n".join(lines)))


class MemoryPanel(Panel):
    """Device memory against the card's total; on CPU the process's resident memory (RSS)."""

    FIXED_SIZE = True  # a grid cell of fixed width, 6 lines high in both layouts

    def show(self, run: RunStarted | None, step: Step | None) -> None:
        if run is None or step is None:
            self.show_text("waiting for the first step")
            return
        total = step.mem_total_bytes if step.mem_total_bytes is not None else run.device_memory_bytes
        on_cpu = run.device.startswith("cpu")
        used = step.mem_reserved_bytes if on_cpu else step.mem_allocated_bytes
        fraction = None if used is None or not total else used / total
        width = max(8, self.content_size.width - 12) if self.content_size.width else 12
        of_total = f" of {fmt.gigabytes(total)}"
        if on_cpu:
            self.set_title("memory (CPU, RSS)")
            lines = [f"{fmt.bar(fraction, width)} {fmt.gigabytes(used)}",
                     f"RSS {fmt.gigabytes(used)}{of_total}",
                     f"peak {fmt.gigabytes(step.mem_peak_bytes)}"]
        else:
            self.set_title("memory")
            lines = [f"{fmt.bar(fraction, width)} {fmt.gigabytes(used)}",
                     f"allocated {fmt.gb_number(used)}{of_total}",
                     f"reserved {fmt.gb_number(step.mem_reserved_bytes)} · peak {fmt.gb_number(step.mem_peak_bytes)}"]
        self.show_text(Text("\n".join(lines)))


class VitalsPanel(Panel):
    """The card's vitals from NVML (utilisation, temperature, power, memory in use), load and RSS; hidden for
    a log that carries none (RunStarted.vitals_source empty: written before vitals, or a nanoGPT log)."""

    DEFAULT_CSS = "VitalsPanel { display: none; height: auto; border: round $primary; padding: 0 1; }"

    def show(self, run: RunStarted | None, step: Step | None) -> None:
        self.display = run is not None and bool(run.vitals_source)
        if self.display:
            self.set_title("vitals")
            self.show_text("\n".join(vitals_lines(run, step)))


class TimePanel(Panel):
    FIXED_SIZE = True  # a grid cell of fixed width, 6 lines high in both layouts

    def show(self, run: RunStarted | None, step: Step | None, finished: Finished | None,
             tz: tzinfo | None, clock: RunClock | None = None) -> None:
        """`clock`: the iteration, elapsed time and ETA as of now (fwtui.live_clock), else the Step's own."""
        if run is None or step is None:
            self.show_text("waiting for the first step")
            return
        now = clock or RunClock(step.iter, step.elapsed_seconds, step.eta_seconds, step.time, step.tokens_seen,
                                step.epoch)
        share = f" ({fmt.percent(now.iter / run.max_iters)})" if run.max_iters > 0 else ""
        lines = [f"iter {fmt.count(now.iter)} of {fmt.count(run.max_iters)}{share}"]
        if finished is not None:
            lines.append(f"elapsed {fmt.duration(finished.seconds)} · {finished.reason}")
        else:
            left = fmt.approx(fmt.duration(now.eta_seconds))
            lines.append(f"elapsed {fmt.duration(now.elapsed_seconds)} · left {left}")
            # The finish time is the clock's own time plus its ETA, so a replay shows what was expected then.
            finish = None if now.eta_seconds is None else now.at + now.eta_seconds
            lines.append(f"done {fmt.approx(fmt.clock(finish, now=now.at, tz=tz))} (incl. evals)")
        lines.append(f"tokens {fmt.compact(now.tokens_seen)} · epoch {now.epoch:.2f}")
        self.show_text(Text("\n".join(lines)))


class SamplePanel(Panel):
    def show(self, sample: Sample | None, can_sample: bool) -> None:
        if sample is None:
            self.set_title("latest sample")
            self.show_text("no sample yet" + (" — press s" if can_sample else ""))
            return
        self.set_title(f"latest sample · iter {fmt.count(sample.iter)}")
        text = Text()
        if sample.prompt.strip():
            text.append(sample.prompt, style="italic")
        text.append(sample.text)
        self.show_text(text)


class PreparePanel(Panel):
    """Tokenization progress before the run starts: bar, documents, tokens, rate, time left."""

    def show(self, progress: PrepareProgress | None, done: PrepareDone | None) -> None:
        if done is not None:
            cached = " (cached)" if done.cached else ""
            self.show_text(Text(
                f"data ready{cached}: {fmt.count(done.train_tokens)} train + {fmt.count(done.val_tokens)} val "
                f"tokens · {fmt.count(done.documents)} documents · {fmt.duration(done.seconds)}\n"
                "starting the run…"))
            return
        if progress is None:
            self.show_text("waiting for the engine…")
            return
        fraction = progress.bytes_done / progress.bytes_total if progress.bytes_total else None
        width = max(10, (self.content_size.width or 40) - 8)
        lines = [f"{fmt.bar(fraction, width)} {fmt.percent(fraction, 0)}",
                 f"documents {fmt.count(progress.documents)} · tokens {fmt.count(progress.tokens)} "
                 f"· {fmt.rate(progress.tokens_per_sec, 'tok')}",
                 f"read {fmt.gigabytes(progress.bytes_done)} of {fmt.gigabytes(progress.bytes_total)} (parquet) "
                 f"· left {fmt.approx(fmt.duration(progress.eta_seconds))}"]
        if progress.source:
            which = f"file {progress.file_index}/{progress.file_count} " if progress.file_count > 1 else ""
            lines.append(f"reading {which}{progress.source}")
        self.show_text(Text("\n".join(lines), overflow="ellipsis"))


HEALTH_LINES = 2
"""Findings shown in the health line (most serious first); the rest are counted. `fwtui view RUN --summary`
lists them all."""


class HealthPanel(Panel):
    """Run health: the messages of trainer.observe.health.assess's findings (the screen assesses; this only shows).

    Each line starts with "health:" so it reads without colour; `-findings` colours it as a warning."""

    def show(self, findings: list[str] | None) -> None:
        self.set_class(bool(findings), "-findings")
        if findings is None:
            self.show_text("health: waiting for the first step")
        elif not findings:
            self.show_text(Text("health: ok (no NaN, loss spike, val plateau, train/val gap, MFU drop, memory or "
                                "epoch problem)", no_wrap=True, overflow="ellipsis"))
        else:
            lines = [f"health: {message}" for message in findings[:HEALTH_LINES]]
            if len(findings) > HEALTH_LINES:
                lines.append(f"health: {len(findings) - HEALTH_LINES} more (`fwtui view RUN --summary` lists all)")
            self.show_text("\n".join(lines))


class ErrorPanel(Panel):
    """The engine's one-line failure message; readable without colour thanks to the "ERROR:" prefix."""

    def show(self, message: str | None, iteration: int | None) -> None:
        where = "" if iteration is None else f" (at iter {fmt.count(iteration)})"
        self.show_text(Text(f"ERROR{where}: {message}\nThe run has stopped. q quits; the log below has the events."))


class EventLog(RichLog):
    """Eval, checkpoint, sample, pause and warning lines, newest at the bottom, at most LOG_LINES kept.

    A long line (a warning with its fix) wraps at the panel's width instead of running past its right edge, so
    the panel scrolls only up and down; the lines are wrapped again when the width changes."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(max_lines=LOG_LINES, wrap=True, min_width=1, highlight=False, markup=False,
                         auto_scroll=True, id=id)
        self.border_title = "events"
        self.lines_text: deque[str] = deque(maxlen=LOG_LINES)
        """The lines as written (before wrapping), oldest first."""
        self._wrapped_at = 0  # the content width the lines were last wrapped to

    def add_lines(self, lines: list[str]) -> None:
        for line in lines:
            self.lines_text.append(line)
            self.write(Text(line))

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        width = self.scrollable_content_region.width
        if self._wrapped_at and width != self._wrapped_at and self.lines_text:
            self.clear()
            for line in self.lines_text:
                self.write(Text(line))
        self._wrapped_at = width


def log_line(event) -> str | None:
    """The event log's line for an event, or None for events that only update the panels."""
    match event:
        case PrepareDone():
            return (f"data ready: {fmt.compact(event.train_tokens)} train tokens, {fmt.count(event.documents)} "
                    f"documents in {fmt.duration(event.seconds)}{' (cached)' if event.cached else ''}")
        case RunStarted():
            where = f"from iter {fmt.count(event.start_iter)}" if event.start_iter else "from scratch"
            return f"run started {where} · {event.run_dir}"
        case Eval():
            over = f" · {fmt.compact(event.val_tokens)} val tokens" if event.val_tokens is not None else ""
            bpb = f" · val {fmt.bpb(event.val_bpb)}" if event.val_bpb is not None else ""
            return (f"iter {fmt.count(event.iter)} eval: train {fmt.loss(event.train_loss)} · val "
                    f"{fmt.loss(event.val_loss)} (best {fmt.loss(event.best_val_loss)}){bpb} · "
                    f"{fmt.seconds(event.seconds)}{over}")
        case CheckpointSaved():
            held = f", training held {fmt.seconds(event.held_seconds)}" if event.held_seconds is not None else ""
            return (f"iter {fmt.count(event.iter)} checkpoint ({event.reason}): {fmt.gigabytes(event.bytes)} "
                    f"in {fmt.seconds(event.seconds)}{held}")
        case Sample():
            return (f"iter {fmt.count(event.iter)} sample: training paused {fmt.seconds(event.seconds)}; "
                    "see latest sample")
        case StateChanged():
            return f"iter {fmt.count(event.iter)} {event.state}"
        case Warning():
            return f"WARNING: {event.message}"
        case Finished():
            final = ""
            if event.final_val_loss is not None or event.final_train_loss is not None:
                final = f" · train {fmt.loss(event.final_train_loss)} val {fmt.loss(event.final_val_loss)}"
            return (f"finished ({event.reason}) at iter {fmt.count(event.iter)} after "
                    f"{fmt.duration(event.seconds)}{final}")
        case Failed():
            return f"ERROR: {event.message}"
    return None
