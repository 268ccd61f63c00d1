"""What the setup screen's plan workers compute, off the UI thread: the plan of the chosen run and the fit
marks of every preset, both from trainer.plan.planner.

Plain functions, no widgets: the screen's thread workers call them and post the result back as a message.
The planner is imported inside (it is the slow part of the screen's start, and an install without it still
opens the screen: the plan panel then says so). Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from fwtui.screens.token_counts import TokenCounts
from trainer.config import RunConfig
from trainer.errors import FwtuiError

NO_PLANNER = "the planner (trainer.plan.planner) is not installed"


def plan_for(config: RunConfig, data: str | None, gpu: Any, *, gpus: int = 1, token_counts: TokenCounts,
             peak_tflops: float | None, runs_dir: Path | None,
             cancelled: Callable[[], bool]) -> tuple[Any, str] | None:
    """(the Plan or None, a note) for `config` on `gpu` (None: this machine's CPU), `gpus` such cards under
    DDP (trainer.plan.planner.across_gpus: memory per GPU, time for all at an assumed scaling); None when
    `cancelled()` says a newer plan superseded this one while the dataset's tokens were counted."""
    tokens, exact = None, False
    if data:
        counted = token_counts.get(data, cancelled=cancelled, text_column=config.text_column)
        if counted is None:  # superseded while waiting: the newer plan waits for the same count
            return None
        if isinstance(counted, str):  # no text column, not a parquet file...: `t` refuses it too (start_problem)
            return None, f"data: {counted}"
        else:
            # The training split, as `fwtui plan` and the run count it (trainer.data.train_split).
            from trainer.data.train_split import training_tokens

            tokens, exact, _ = training_tokens(data, counted, text_column=config.text_column,
                                               val_fraction=config.val_fraction)
    try:
        from trainer.plan.planner import across_gpus, make_plan
    except ImportError:
        return None, NO_PLANNER
    from trainer.observe.hardware import cpu_name, resolve_peak

    name = gpu.name if gpu is not None else cpu_name()
    peak = resolve_peak(name, peak_tflops)[0] if (gpu is not None or peak_tflops) else None
    try:
        plan = make_plan(config, dataset_tokens=tokens, dataset_tokens_exact=exact, device_name=name,
                         device_memory_bytes=gpu.memory_bytes if gpu is not None else None,
                         peak_flops=peak, runs_dir=runs_dir)
    except FwtuiError as err:
        return None, str(err)
    return (across_gpus(plan, config, gpus) if gpus > 1 else plan), ""


def data_content_problem(data: str, text_column: str) -> str | None:
    """Why the files of `data` cannot be trained on (a missing file, no `text_column` of text), from their
    parquet footers (trainer.data.ingest.check_data, milliseconds a file); None when they can."""
    from trainer.data.ingest import check_data

    try:
        check_data(data, text_column=text_column)
    except FwtuiError as err:
        return str(err)
    return None


def fits_on(presets: list[RunConfig], gpu: Any) -> dict[str, bool | None] | None:
    """The planner's memory estimate of every preset against the card: name -> fits (None: unknown);
    None when there is no planner (the widget then shows no marks: it never guesses)."""
    try:
        from trainer.plan.planner import make_plan
    except ImportError:
        return None
    fits: dict[str, bool | None] = {}
    for config in presets:
        try:
            plan = make_plan(config, device_name=gpu.name, device_memory_bytes=gpu.memory_bytes)
            fits[config.name] = (None if plan.est_memory_bytes is None
                                 else plan.est_memory_bytes <= gpu.memory_bytes)
        except FwtuiError:
            fits[config.name] = None
    return fits
