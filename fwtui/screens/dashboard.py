"""The live view of a run: fed engine events one by one, it shows loss, throughput, memory and time to go.

`feed(event)` runs on the UI thread for every event (live, or thousands at once from a replayed
events.jsonl). It only stores the event and appends to bounded histories; the text panels are refreshed once
per batch of events (a scheduled flush) and the charts from a timer, so a replay stays fast and the trainer
never waits on the screen. Keys act through `controls` (trainer.train.controls.Controls or the control-channel
client); controls=None is a read-only replay.

Thin links (issue 5: <= 10 KB/s to the terminal at 120x40) and slow machines (issue 4: the app costs the
run <= 2%): Step-driven redraws are throttled (text panels once a second, charts every CHART_STEADY_SECONDS,
both stretched by fwtui.refresh_budget when the UI thread goes over its CPU budget, but never past its
ceilings: numbers every 2 s, charts every 2 s, or 10 s for a CPU run in this process), panels repaint only
when their text changes, and charts repaint only the lines of the picture that changed. Evals, the first
points, pauses and the end show at once.
Run health (trainer.observe.health.assess, through HealthWatch) is assessed every few seconds or on an Eval.
"""

from __future__ import annotations

import math
import time
from collections import deque
from datetime import tzinfo
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer

from fwtui.refresh_budget import RefreshBudget, ceilings_for
from fwtui.screens.back_to_setup import BACK_BINDING, BackToSetup  # `b` once the run is over (the app's own)
from fwtui.screens.confirm import ConfirmModal
from fwtui.screens.help import HelpModal
from fwtui.screens.sample_modal import SampleModal
from fwtui.screens.chart_keys import CHART_BINDINGS, ChartKeys
from fwtui.screens.run_requests import NOT_NOW_BINDINGS, RunRequests  # e, c, h: requests for the next step boundary
from fwtui.screens.run_position import CLOCK_TICK_SECONDS, RunPosition  # the iteration, clocks moving
from fwtui.widgets.hellaswag_chart import HellaSwagChart, hellaswag_text
from fwtui.screens.compare import open_compare_picker
from fwtui.widgets.charts import HISTORY_POINTS, ChartView, History, LossChart, LossCurves, ThroughputChart
from fwtui.widgets.panels import (ErrorPanel, EventLog, HeaderLine, HealthPanel, MemoryPanel, PreparePanel,
                                  SamplePanel, ThroughputPanel, TimePanel, VitalsPanel, log_line)
from trainer.observe.events import (Eval, Event, Failed, Finished, PrepareDone, PrepareProgress, Progress, RunStarted,
                                    Sample, StateChanged, Step, HellaSwag)
from fwtui.screens.health_watch import HealthWatch
from trainer.observe.health import Finding

CHART_REDRAW_SECONDS = 0.5
"""Charts redraw at most twice a second (the timer's period): plotting costs milliseconds, events can come by
the thousand. New train points alone wait CHART_STEADY_SECONDS; an eval or a chart's first points show at once."""

CHART_STEADY_SECONDS = 2.0
"""During steady training the charts redraw at most this often (stretched by the UI's CPU budget, up to the
ceiling of the run's mode, fwtui.refresh_budget.ceilings_for): each redraw sends the changed lines of the
picture to the terminal (about 1-3 KB), and a curve moving by one point reads the same two seconds later."""

PANEL_REFRESH_SECONDS = 1.0
"""Step events redraw the text panels at most once a second, stretched by the UI's CPU budget to at most 2 s (the
UI thread shares the GIL and the cores with the trainer, each repaint goes down the wire); others show at once."""

SAMPLE_SETTINGS = {"max_new_tokens": 200, "temperature": 0.8, "top_k": 200}
"""What `s` asks for: 200 new tokens at temperature 0.8, top-k 200 (nanoGPT's sample.py defaults)."""


class DashboardScreen(BackToSetup, RunRequests, RunPosition, ChartKeys, Screen[None]):
    CSS_PATH = "../dashboard.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]

    BINDINGS = [
        Binding("s", "sample", "sample"),
        Binding("p", "pause", "pause/resume"),
        Binding("e", "evaluate", "eval"),
        Binding("c", "checkpoint", "checkpoint"),
        Binding("h", "hellaswag", "HellaSwag", show=False),  # off the footer, full at 80 columns; `?` lists it
        Binding("q", "quit_run", "quit"),
        BACK_BINDING,  # in the footer only once the run is over and its worker has ended (check_action)
        Binding("question_mark", "help", "help", key_display="?"),
        *(Binding(b.key, b.action, b.description, show=False) for b in CHART_BINDINGS),  # footer full: `?` lists
        Binding("a", "compare", "compare runs", show=False),
        *NOT_NOW_BINDINGS,  # s p e c h with no run to ask: one line saying why
    ]

    def __init__(self, controls: Any = None, *, title: str = "", attach: bool = False, in_process: bool = True,
                 tz: tzinfo | None = None, history_points: int = HISTORY_POINTS) -> None:
        """`in_process`: the run trains in this process (the app's worker), so the UI's CPU time is taken
        from it; False for a viewer of another process (`attach`, `serve`, `view`). `tz`: the zone the finish
        time is shown in (default local; tests pin UTC)."""
        super().__init__()
        self.controls = controls
        self.run_title = title
        self.attach = attach
        self.in_process = in_process
        self.tz = tz
        # What the events said last; panels are drawn from these.
        self.run: RunStarted | None = None
        self.last_step: Step | None = None
        self.progress: Progress | None = None  # the latest Progress (iteration, elapsed, ETA between Steps)
        self.paused_at: int | None = None  # the step boundary of the last pause
        self.prepare: PrepareProgress | None = None
        self.prepare_done: PrepareDone | None = None
        self.latest_sample: Sample | None = None
        self.finished: Finished | None = None
        self.failed: Failed | None = None
        self.paused = False
        self.stopping = False
        self.events_fed = 0
        # Bounded histories for the charts, and log lines not yet written to the log widget.
        self.curves = LossCurves(history_points)  # train (raw and EMAs), val, and the x axes' map
        self.train_loss, self.val_loss = self.curves.train, self.curves.val
        self.chart_view = ChartView()  # what x / l / m chose, for every chart
        self.mfu_percent = History(history_points)
        self.tokens_per_sec = History(history_points)
        self.hellaswag_scores = History(history_points)  # acc_norm at each HellaSwag scoring
        self._log_pending: deque[str] = deque(maxlen=1000)
        self._health = HealthWatch()  # run health from bounded histories
        self._flush_scheduled = False  # a call_later flush is queued
        self._flush_timer: Any = None  # a throttled flush is waiting on this timer
        self._last_flush = 0.0  # time.monotonic() of the last panel redraw
        self._last_clock = 0.0  # time.monotonic() of the last time-panel redraw (fwtui.screens.run_position)
        self._charts_dirty = True
        self._charts_urgent = True  # redraw at the next tick even in steady training
        self._last_chart_redraw = 0.0
        # Steady redraw intervals kept to the UI's CPU budget, within the ceilings of where the run is (its
        # device is known at RunStarted, which sets them again).
        self.refresh_budget = RefreshBudget(ceilings=ceilings_for(device=None, in_process=in_process))
        self._ready = False  # True once mounted: before that, feed() only stores (on_mount draws it all)

    # --- what tests and the app read -------------------------------------------------------------------
    @property
    def health(self) -> list[Finding] | None:
        """The latest run health findings (trainer.observe.health), most serious first; None before any step."""
        return self._health.findings

    @property
    def loss_points(self) -> int:
        return len(self.train_loss)

    @property
    def latest_sample_text(self) -> str:
        return "" if self.latest_sample is None else self.latest_sample.text

    @property
    def finished_reason(self) -> str | None:
        return None if self.finished is None else self.finished.reason

    @property
    def error_message(self) -> str | None:
        return None if self.failed is None else self.failed.message

    @property
    def run_over(self) -> bool:
        return self.finished is not None or self.failed is not None

    # --- layout ----------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HeaderLine(id="header")
        with VerticalScroll(id="body"):
            yield ErrorPanel(id="error")
            yield PreparePanel(id="prepare")
            with Vertical(id="run-panels"):
                with Horizontal(id="top-row"):
                    yield LossChart(self.curves, self.chart_view, id="loss-chart")
                    yield HellaSwagChart(self.hellaswag_scores, id="hellaswag-chart")  # shown once scored
                    with Vertical(id="throughput-box"):
                        yield ThroughputPanel(id="throughput")
                        yield VitalsPanel(id="vitals")  # shown when the run's Steps carry vitals
                        yield ThroughputChart(self.mfu_percent, self.tokens_per_sec, id="throughput-chart",
                                              view=self.chart_view, axis=self.curves.axis)
                with Horizontal(id="bottom-row"):
                    yield MemoryPanel(id="memory")
                    yield TimePanel(id="time")
                    yield SamplePanel(id="sample")
            yield HealthPanel(id="health")
            yield EventLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").border_title = "error"
        self.query_one("#prepare").border_title = "tokenizing"
        self.query_one("#throughput").border_title = "throughput"
        self.query_one("#memory").border_title = "memory"
        self.query_one("#time").border_title = "time"
        self.set_interval(CHART_REDRAW_SECONDS, self._redraw_charts_if_dirty)
        self.set_interval(CLOCK_TICK_SECONDS, self.tick_clock)
        self._ready = True
        self._flush()

    # --- events ----------------------------------------------------------------------------------------
    def feed(self, event: Event) -> None:
        """Take one engine event (UI thread). Cheap: stores it, appends to histories, schedules a flush."""
        self.events_fed += 1
        match event:
            case PrepareProgress():
                self.prepare = event
            case PrepareDone():
                self.prepare_done = event
            case RunStarted():
                self._start_run(event)
            case Step():
                if self.last_step is None or event.iter >= self.last_step.iter:  # replays may come unordered
                    self.last_step = event
                self.curves.add_step(event.iter, event.loss, event.tokens_seen, event.elapsed_seconds)
                if event.mfu is not None:
                    self.mfu_percent.add(event.iter, event.mfu * 100)
                self.tokens_per_sec.add(event.iter, event.tokens_per_sec)
                self._charts_dirty = True
                self._charts_urgent |= len(self.train_loss) < 3  # the first points show at once
            case Progress():
                if self.progress is None or event.iter >= self.progress.iter:
                    self.progress = event
            case Eval():
                self.curves.add_eval(event.iter, event.val_loss)
                self._charts_dirty = self._charts_urgent = True
            case HellaSwag():
                self.hellaswag_scores.add(event.iter, event.acc_norm)
                self._log_pending.append(hellaswag_text(event))
                self._charts_dirty = self._charts_urgent = True
            case Sample():
                self.latest_sample = event
                self._forward_sample(event)
            case StateChanged():
                self.paused = event.state == "paused"
                self.paused_at = event.iter if self.paused else None
            case Finished():
                self.finished = event
                self._charts_urgent = True
            case Failed():
                self.failed = event
                self._charts_urgent = True
        self._health.note(event)
        if isinstance(event, (Step, Progress)):
            self.note_news(event)
        line = log_line(event)
        if line is not None:
            self._log_pending.append(line)
        # Steps wait for the next panel refresh, unless one brings a non-finite loss (health says so at once).
        self._schedule_flush(urgent=not isinstance(event, (Step, Progress))
                             or not math.isfinite(getattr(event, "loss", 0.0)))
        if isinstance(event, (Finished, Failed)):
            self.refresh_bindings()  # s p e c leave the footer: nothing to ask a run that is over
            if self.stopping:
                self.app.exit()

    def _start_run(self, event: RunStarted) -> None:
        same_run = self.run is not None and event.run_dir == self.run.run_dir and event.start_iter > 0
        if self.run is not None and not same_run:  # another run in the same view: start its curves afresh
            self.curves.clear()
            for history in (self.mfu_percent, self.tokens_per_sec, self.hellaswag_scores):
                history.clear()
        self._health.start(event, same_run=same_run)
        self.run = event
        self.curves.axis.flops_per_token = event.flops_per_token  # the x key's training-FLOPs axis
        self.curves.preset = event.config.get("name")  # its reference curves (the r key)
        self.refresh_budget.ceilings = ceilings_for(device=event.device, in_process=self.in_process)
        self.last_step = self.progress = self.paused_at = None
        self.finished = self.failed = None
        self.paused = False
        self.refresh_bindings()  # a continued run takes requests again
        self._charts_dirty = self._charts_urgent = True

    def _forward_sample(self, sample: Sample) -> None:
        if not self._ready:
            return
        for screen in self.app.screen_stack:
            if isinstance(screen, SampleModal):
                screen.show_sample(sample)

    def _schedule_flush(self, urgent: bool) -> None:
        # One flush per batch of events (a replay of thousands redraws the panels once), and for a stream of
        # Steps at most one per PANEL_REFRESH_SECONDS.
        if not self._ready or self._flush_scheduled:
            return
        wait = self.refresh_budget.numbers(PANEL_REFRESH_SECONDS) - (time.monotonic() - self._last_flush)
        if urgent or wait <= 0:
            if self._flush_timer is not None:
                self._flush_timer.stop()
                self._flush_timer = None
            self._flush_scheduled = True
            self.call_later(self._flush)
        elif self._flush_timer is None:
            self._flush_timer = self.set_timer(wait, self._flush)

    def _status(self) -> str:
        if self.failed is not None:
            return "FAILED"
        if self.finished is not None:
            return f"finished ({self.finished.reason})"
        if self.stopping:
            return "stopping at the next step boundary, saving a checkpoint…"
        if self.paused:
            return "PAUSED"
        return ""

    def _flush(self, force_health: bool = False) -> None:
        """Redraw the text panels from the stored events (the charts have their own timer)."""
        self._flush_scheduled = False
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        if not self._ready:
            return
        self._last_flush = time.monotonic()
        self.set_class(self.run is not None, "-running")
        self.set_class(self.failed is not None, "-failed")
        self.query_one(HeaderLine).show(title=self.run_title, run=self.run, step=self.last_step,
                                        status=self._status(), iteration=self.iteration)
        self.query_one(PreparePanel).show(self.prepare, self.prepare_done)
        self.query_one(ThroughputPanel).show(self.run, self.last_step)
        self.query_one(VitalsPanel).show(self.run, self.last_step)
        self.query_one(MemoryPanel).show(self.run, self.last_step)
        self.show_time()
        self.query_one(SamplePanel).show(self.latest_sample, can_sample=self.controls is not None)
        if self.failed is not None:
            self.query_one(ErrorPanel).show(self.failed.message, self.failed.iter)
        new_findings = self._health.assess_if_due(force=force_health)
        self._log_pending.extend(f"HEALTH: {f.message}" for f in new_findings)  # each kind once, when it appears
        self.query_one(HealthPanel).show(None if self.health is None else [f.message for f in self.health])
        if self._log_pending:
            self.query_one(EventLog).add_lines(list(self._log_pending))
            self._log_pending.clear()

    def _redraw_charts_if_dirty(self) -> None:
        # Called every CHART_REDRAW_SECONDS: at once for evals and first points, else every CHART_STEADY_SECONDS
        # (stretched, within the mode's ceiling). The budget's clock is read here too: this timer runs on the
        # UI thread.
        self.refresh_budget.tick()
        steady_due = (time.monotonic() - self._last_chart_redraw
                      >= self.refresh_budget.charts(CHART_STEADY_SECONDS))
        if self._charts_dirty and (self._charts_urgent or steady_due):
            self._redraw_charts()

    def _redraw_charts(self) -> None:
        self._charts_dirty = self._charts_urgent = False
        self._last_chart_redraw = time.monotonic()
        self.query_one(LossChart).redraw()
        self.query_one(ThroughputChart).redraw()
        self.query_one(HellaSwagChart).redraw()

    def redraw_now(self) -> None:
        """Draw everything at once (the app calls it after a replay; snapshot tests before the picture)."""
        self._flush(force_health=True)
        if not self._ready:
            return
        self._redraw_charts()

    # --- keys --------------------------------------------------------------------------------------------
    def action_sample(self) -> None:
        if self._controls_or_say() is None:
            return
        self.app.push_screen(SampleModal(self._request_sample))

    def _request_sample(self, prompt: str) -> None:
        self.controls.request_sample(prompt, SAMPLE_SETTINGS["max_new_tokens"], SAMPLE_SETTINGS["temperature"],
                                     SAMPLE_SETTINGS["top_k"])

    def action_pause(self) -> None:
        controls = self._controls_or_say()
        if controls is None:
            return
        now_paused = controls.toggle_pause()
        self.notify("pausing at the next step boundary" if now_paused else "resuming")

    def action_quit_run(self) -> None:
        if self.controls is None or self.run_over:
            self.app.exit()
        elif self.stopping:
            self.notify("already stopping: waiting for the checkpoint at the next step boundary")
        elif self.attach:
            self.app.push_screen(ConfirmModal("Detach from this run? The run goes on; `fwtui attach RUN` "
                                              "shows it again.", yes="detach", no="stay"),
                                 lambda yes: self.app.exit() if yes else None)
        else:
            self.app.push_screen(ConfirmModal("Stop the run? It stops at the next step boundary, saves a "
                                              "checkpoint, then fwtui exits.", yes="stop", no="keep training"),
                                 self._on_quit_answer)

    def _on_quit_answer(self, yes: bool | None) -> None:
        if not yes:
            return
        if self.run_over:  # it ended while the question was open
            self.app.exit()
            return
        self.stopping = True
        self.controls.stop("quit")
        self.notify("stopping at the next step boundary, saving a checkpoint…")
        self._flush()

    def redraw_charts_for_view(self) -> None:  # x / l / m (fwtui.screens.chart_keys): keys come once mounted
        self._redraw_charts()

    def action_compare(self) -> None:  # `a`: runs of the runs directory to compare with this one
        open_compare_picker(self.app, None if self.run is None else self.run.run_dir)

    def action_help(self) -> None:
        self.app.push_screen(HelpModal(read_only=self.controls is None, attach=self.attach, over=self.run_over,
                                       back=self.can_go_back))
