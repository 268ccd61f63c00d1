"""The setup screen: choose a preset and a parquet file, see the plan, adjust a few keys, start; or continue
a stopped run from the list of runs with a checkpoint (Enter on it, or `r`).

Everything slow runs in thread workers that post messages back: the GPU query (nvidia-smi), the dataset
token count (parquet metadata), the plan and the fit marks (fwtui.screens.setup_plan), the parquet scan, the demo
corpus and the runs directory (trainer.runs.listing.scan_runs). Nothing here imports torch, so the screen is up long before a run needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Static
from textual.worker import get_current_worker

from fwtui.format import gigabytes
from fwtui.recent import last_preset, load_recent, remember_preset
from fwtui.screens.back_to_setup import ComingBack  # the last run's end, after `b` on its dashboard
from fwtui.screens.setup_keys import SetupKeys  # r n / digits g G ?
from fwtui.screens.setup_plan import data_content_problem, fits_on, plan_for
from fwtui.screens.token_counts import TokenCounts
from fwtui.screens.typing_guard import TypingGuard
from fwtui.widgets.file_picker import FilePicker, data_path_problem
from fwtui.widgets.gpu_choice import GpuChoice, cuda_visible, gpus_problem
from fwtui.widgets.overrides import OverridesPanel
from fwtui.widgets.plan_panel import PlanPanel
from fwtui.widgets.preset_list import PresetList
from fwtui.widgets.run_list import RunChoice, RunList, list_run_choices
from trainer.config import RunConfig, apply_overrides
from trainer.errors import FwtuiError
from trainer.plan.target import for_card

CPU_PRESET = "cpu-tiny"
"""Where the cursor starts on a machine without GPU when no preset was asked for or used before."""

GpuProbe = Callable[[], list[Any]]
"""Returns the machine's GPUs as objects with .name and .memory_bytes (trainer.observe.hardware.GpuSummary)."""


@dataclass(frozen=True)
class StartChoice:
    """What the user chose: the preset (as loaded, before overrides), the overrides, the data path, and how
    many GPUs (more than 1: the app runs `fwtui train --gpus N` under torchrun, fwtui.child_run)."""

    preset: RunConfig
    overrides: list[str]
    data: str
    gpus: int = 1


class SetupScreen(ComingBack, SetupKeys, TypingGuard, Screen):
    BINDINGS = [
        Binding("q", "app.quit", "quit"),
        Binding("t", "start", "start"),
        Binding("slash", "filter", "filter"),
        Binding("d", "demo", "demo corpus"),
        Binding("r", "continue_run", "continue a run"),
        Binding("g", "plan_for", "plan for a card", show=False),  # this machine -> each card of the table
        Binding("G", "plan_for(True)", "previous card", show=False),  # the same ring the other way
        Binding("n", "choose_gpus", "GPUs"),  # in the footer only when there are several (check_action)
        Binding("question_mark", "help", "help", key_display="?"),
        *[Binding(str(n), f"preset('{n}')", f"preset {n}", show=False) for n in range(10)],
    ]

    class StartRequested(Message):
        def __init__(self, choice: StartChoice) -> None:
            super().__init__()
            self.choice = choice

    class ResumeRequested(Message):
        """Continue this run from its checkpoint (`fwtui train --out RUN --resume`, in the app)."""

        def __init__(self, run_dir: Path) -> None:
            super().__init__()
            self.run_dir = run_dir

    class RunsListed(Message):
        def __init__(self, choices: list[RunChoice], error: str | None = None) -> None:
            super().__init__()
            self.choices = choices
            self.error = error

    class GpusDetected(Message):
        def __init__(self, gpus: list[Any]) -> None:
            super().__init__()
            self.gpus = gpus

    class PlanReady(Message):
        def __init__(self, plan: Any, title: str, note: str = "") -> None:
            super().__init__()
            self.plan = plan
            self.title = title
            self.note = note

    class FitsReady(Message):
        def __init__(self, fits: dict[str, bool | None]) -> None:
            super().__init__()
            self.fits = fits

    class DemoReady(Message):
        def __init__(self, path: str | None, error: str | None = None, built: bool = False) -> None:
            super().__init__()
            self.path, self.error, self.built = path, error, built

    def __init__(self, presets: list[RunConfig], *, root: Path, gpu_probe: GpuProbe,
                 preset: str | None = None, data: str | None = None, overrides: list[str] | None = None,
                 start: bool = False, demo: bool = False, peak_tflops: float | None = None,
                 runs_dir: Path | None = None) -> None:
        super().__init__()
        self.presets = presets
        self.root = root
        self.gpu_probe = gpu_probe
        self.initial_preset = preset
        self.initial_data = data
        self.initial_overrides = list(overrides or [])
        self.start_at_once = start
        self.demo_at_once = demo
        self.peak_tflops = peak_tflops
        self.runs_dir = runs_dir
        # The preset to start on: --preset, else the one the last run was started with; with neither, the
        # first, until the GPU probe finds no GPU (then cpu-tiny: a GPU preset's plan on a CPU is no use).
        wanted = preset or last_preset()
        chosen = [p for p in presets if p.name == wanted]
        self.preset_settled = bool(chosen)
        """False while the preset is only the list's first, to be replaced by CPU_PRESET on a machine without GPU."""
        self.base: RunConfig | None = chosen[0] if chosen else (presets[0] if presets else None)
        self.data: str | None = None
        self.gpus: list[Any] | None = None  # None while nvidia-smi is being asked
        self.plan_for: Any = None  # `g`: a card of the table to plan for (trainer.plan.target), None = this machine
        self.started = False
        self.token_counts = TokenCounts()  # one count per data path at a time, kept for every preset

    # --- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("fwtui · set up a run   detecting GPU…", id="setup-title")
        with Horizontal(id="setup-main"):
            with Vertical(id="setup-left"):
                yield PresetList(self.presets, initial=self.base.name if self.base else None, id="presets")
                yield FilePicker(self.root, load_recent(), token_counts=self.token_counts, id="picker")
                yield RunList(id="runs")
            with VerticalScroll(id="setup-right"):
                yield GpuChoice(id="gpus")  # hidden with 0 or 1 GPU
                yield PlanPanel(id="plan")
                yield OverridesPanel(id="overrides")
                yield Static("", id="start-problem", classes="problem")
                yield Button("start (t)", id="start", variant="success", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#start-problem").display = False
        self.query_one(RunList).display = False  # shown once the scan finds a run to continue
        presets = self.query_one(PresetList)
        overrides = self.query_one(OverridesPanel)
        if self.base is not None:
            overrides.set_base(self.base)
        overrides.prefill(self.initial_overrides)
        if self.initial_data:
            self.query_one(FilePicker).set_path(self.initial_data)
        presets.focus_list()
        self.detect_gpus()
        self.list_runs()
        self.refresh_plan()
        if self.demo_at_once and not self.initial_data:
            self.action_demo()
        elif self.start_at_once:
            self.call_after_refresh(self.action_start)

    # --- workers ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="gpu")
    def detect_gpus(self) -> None:
        try:
            gpus = list(self.gpu_probe())
        except Exception:  # noqa: BLE001 - a broken probe means "no GPU known", never a crash
            gpus = []
        self.post_message(self.GpusDetected(gpus))

    @work(thread=True, exclusive=True, group="runs")
    def list_runs(self) -> None:
        """The runs directory's runs that can be continued (or are running elsewhere), newest first."""
        try:
            choices = list_run_choices(self.runs_dir if self.runs_dir is not None else Path("runs"))
        except (FwtuiError, OSError) as err:
            self.post_message(self.RunsListed([], str(err)))
            return
        self.post_message(self.RunsListed(choices))

    def effective_config(self) -> RunConfig | None:
        """The chosen preset with the overrides applied, or None while they do not apply."""
        if self.base is None:
            return None
        try:
            return apply_overrides(self.base, self.query_one(OverridesPanel).all_overrides())
        except FwtuiError:
            return None

    def refresh_plan(self) -> None:
        config = self.effective_config()
        if config is None:
            self.workers.cancel_group(self, "plan")  # a plan of the previous values must not land now
            if self.base is not None:
                self.query_one(PlanPanel).show_message("fix the overrides to see the plan", self.base.name)
            return
        gpu = self.plan_for or (self.gpus[0] if self.gpus else None)
        config = for_card(config) if self.plan_for else config  # as the card runs it: CUDA, bf16, compile
        self.compute_plan(config, self.data, gpu, self.gpu_count)

    @property
    def gpu_count(self) -> int:
        """The GPUs the run is to train on: the "GPUs" choice, 1 unless several are visible."""
        return self.query_one(GpuChoice).count if cuda_visible(self.gpus or []) > 1 else 1

    @work(thread=True, exclusive=True, group="plan")
    def compute_plan(self, config: RunConfig, data: str | None, gpu: Any, gpus: int = 1) -> None:
        """Count the dataset's tokens (once per path, shared by every preset) and ask the planner; post the Plan."""
        worker = get_current_worker()
        done = plan_for(config, data, gpu, gpus=gpus, token_counts=self.token_counts, peak_tflops=self.peak_tflops,
                        runs_dir=self.runs_dir, cancelled=lambda: worker.is_cancelled)
        if done is not None and not worker.is_cancelled:
            self.post_message(self.PlanReady(done[0], config.name, done[1]))

    @work(thread=True, exclusive=True, group="fits")
    def compute_fits(self, gpu: Any) -> None:
        """The planner's memory estimate of every preset against the card: name -> fits."""
        fits = fits_on(self.presets, gpu)
        if fits is not None:
            self.post_message(self.FitsReady(fits))

    @work(thread=True, exclusive=True, group="demo")
    def build_demo(self) -> None:
        try:
            from trainer.data.demo import build_demo_corpus, default_path

            built = not default_path().is_file()
            self.post_message(self.DemoReady(str(build_demo_corpus()), built=built))
        except (ImportError, FwtuiError, OSError) as err:
            self.post_message(self.DemoReady(None, str(err)))

    # --- messages from workers and widgets ---------------------------------------------------------
    def on_setup_screen_gpus_detected(self, event: GpusDetected) -> None:
        self.gpus = event.gpus
        if event.gpus:
            gpu = event.gpus[0]
            more = f" (+{len(event.gpus) - 1} more)" if len(event.gpus) > 1 else ""
            line = f"GPU {gpu.name} · {gigabytes(gpu.memory_bytes)}{more}"
            self.compute_fits(gpu)
            self.query_one(GpuChoice).set_available(cuda_visible(event.gpus))
            self.refresh_bindings()  # `n` joins the footer when there is a choice
        else:
            line = "CPU (nvidia-smi found no NVIDIA GPU)"
            if not self.preset_settled and self.base is self.presets[0]:  # the user has not moved the cursor
                self.query_one(PresetList).move_to(CPU_PRESET)  # the plan follows (Highlighted)
        self.preset_settled = True
        self.query_one("#setup-title", Static).update(f"fwtui · set up a run   {line}")
        self.refresh_plan()

    def on_setup_screen_runs_listed(self, event: RunsListed) -> None:
        runs = self.query_one(RunList)
        runs.show(event.choices)
        runs.display = bool(event.choices)
        if event.error:
            self.notify(f"runs not listed: {event.error}", severity="warning")

    def on_run_list_chosen(self, event: RunList.Chosen) -> None:
        self._continue(event.choice)

    def _continue(self, choice: RunChoice) -> None:
        if not choice.continuable:
            self.notify(f"{choice.name}: {choice.line}", severity="warning", markup=False)
            return
        if self.started:
            return
        self.started = True
        self.post_message(self.ResumeRequested(choice.path))

    def on_setup_screen_plan_ready(self, event: PlanReady) -> None:
        panel = self.query_one(PlanPanel)
        if event.plan is None:
            panel.show_message(event.note or "no plan", event.title)
        else:
            card = f" for {self.plan_for.name} (estimate)" if self.plan_for else ""  # `g` chose a card
            panel.show_plan(event.plan, event.title + card)

    def on_setup_screen_fits_ready(self, event: FitsReady) -> None:
        self.query_one(PresetList).set_fits(event.fits)

    def on_setup_screen_demo_ready(self, event: DemoReady) -> None:
        if event.path is None:
            self.notify(f"demo corpus failed: {event.error}", severity="error")
            return
        self.notify(self.query_one(FilePicker).demo_chosen(event.path, event.built), timeout=8, markup=False)
        if self.start_at_once:
            self.action_start()

    def on_preset_list_highlighted(self, event: PresetList.Highlighted) -> None:
        self._set_preset(event.config)

    def on_preset_list_chosen(self, event: PresetList.Chosen) -> None:
        self._set_preset(event.config)
        if self.data:
            self.query_one("#start", Button).focus()
        else:
            self.query_one("#data-path").focus()

    def _set_preset(self, config: RunConfig) -> None:
        if self.base is config:
            return
        self.base = config
        self.forget_last_run()
        self.query_one(OverridesPanel).set_base(config)
        self.refresh_plan()

    def on_file_picker_picked(self, event: FilePicker.Picked) -> None:
        self.data = event.path
        self._show_start_problem(None)
        self.refresh_plan()
        if self.focused is not None and self.focused.id == "data-path":
            self.query_one("#start", Button).focus()

    def on_file_picker_demo_requested(self, event: FilePicker.DemoRequested) -> None:
        self.action_demo()

    def on_overrides_panel_changed(self, event: OverridesPanel.Changed) -> None:
        self.forget_last_run()
        self.refresh_plan()

    def on_gpu_choice_changed(self, event: GpuChoice.Changed) -> None:
        self._show_start_problem(None)
        self.refresh_plan()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            event.stop()
            self.action_start()

    # --- actions -----------------------------------------------------------------------------------
    def start_problem(self) -> str | None:
        """Why the run cannot start yet, in one line; None when it can."""
        if self.base is None:
            return "choose a preset"
        picker = self.query_one(FilePicker)
        text = picker.path_text or (self.data or "")
        problem = data_path_problem(text)
        if problem is not None:
            return f"data: {problem}"
        problem = data_content_problem(text, (self.effective_config() or self.base).text_column)
        if problem is not None:  # the plan says so too; a run would fail at once and leave a directory
            return f"data: {problem}"
        self.data = text
        overrides = self.query_one(OverridesPanel)
        if overrides.validate() is not None:
            return f"overrides: {overrides.problem}"
        return gpus_problem(self.effective_config(), self.gpu_count)

    def _show_start_problem(self, problem: str | None) -> None:
        line = self.query_one("#start-problem", Static)
        line.update(problem or "")
        line.display = problem is not None
        self.last_run_line = None  # a problem, or nothing, replaces the last run's line (fwtui.screens.back_to_setup)
        line.remove_class("-note")

    def action_start(self) -> None:
        if self.started:
            return
        problem = self.start_problem()
        self._show_start_problem(problem)
        if problem is not None:
            return
        assert self.base is not None and self.data is not None
        self.started = True
        remember_preset(self.base.name)  # the next setup screen starts on it
        self.post_message(self.StartRequested(StartChoice(
            preset=self.base, overrides=self.query_one(OverridesPanel).all_overrides(), data=self.data,
            gpus=self.gpu_count)))

    def action_demo(self) -> None:
        from trainer.data.demo import default_path

        if not default_path().is_file():
            self.notify("building the demo corpus from Python's docstrings (once: about 20 s)…", timeout=5)
        self.build_demo()
