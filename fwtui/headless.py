"""The headless printer: a sink that turns engine events into one plain line each, for `fwtui train`.

It formats what the events carry and computes nothing. Lines go to a stream (stdout), flushed, so a
`tee` or an SSH log shows them as they come; prepare progress prints at most one line every few seconds.
"""

from __future__ import annotations

from collections import Counter
import sys
import time
from pathlib import Path
from typing import TextIO

from fwtui import format as fmt
from fwtui.vitals_text import vitals_lines
from trainer.data.hellaswag import CHANCE, GPT2_124M_ACC_NORM
from trainer.observe import events as ev
from trainer.model.formulas import format_count

PREPARE_EVERY = 3.0  # seconds between prepare progress lines
VITALS_EVERY = 30.0  # seconds of the run (event time) between vitals lines: a trend, not a second stream


class HeadlessPrinter:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.max_iters: int | None = None
        self._last_prepare = 0.0
        self._run: ev.RunStarted | None = None
        self._last_vitals: float | None = None  # event time of the last vitals line
        self._last_eval_iter: int | None = None  # the iteration the final val loss comes from

    def line(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError, RuntimeError):
            # A closed terminal (SSH dropped) must not stop the run: it goes on, logged to events.jsonl.
            # RuntimeError: a signal handler's note() landing inside another write ("reentrant call").
            pass

    note = line  # what the signal handlers call

    def __call__(self, event: ev.Event) -> None:
        handler = getattr(self, f"_{event.kind}", None)
        if handler is not None:
            handler(event)

    # --- one method per event kind -------------------------------------------------------------------------
    def _prepare_progress(self, e: ev.PrepareProgress) -> None:
        if e.finished_file:
            since = " (since the resume)" if e.file_resumed else ""
            self.line(f"prepared file {e.file_index}/{e.file_count}: {e.finished_file} · {e.file_documents:,} "
                      f"documents · {e.file_tokens:,} tokens{since}")
        now = time.monotonic()
        if now - self._last_prepare < PREPARE_EVERY:
            return
        self._last_prepare = now
        done = fmt.percent(e.bytes_done / e.bytes_total, 0) if e.bytes_total else fmt.UNKNOWN
        self.line(f"preparing: {done} · {e.documents:,} documents · {e.tokens:,} tokens · "
                  f"{fmt.rate(e.tokens_per_sec, 'tok')} · ETA {fmt.duration(e.eta_seconds)}")

    def _prepare_done(self, e: ev.PrepareDone) -> None:
        how = "reused from the cache" if e.cached else f"tokenized in {fmt.seconds(e.seconds)}"
        self.line(f"data: {e.data_dir} · train {e.train_tokens:,} tokens · val {e.val_tokens:,} tokens · {how}")

    def _run_started(self, e: ev.RunStarted) -> None:
        self.max_iters = e.max_iters
        cfg = e.config
        peak = (f"peak {fmt.tflops(e.peak_flops)} ({e.peak_flops_source})" if e.peak_flops
                else f"MFU unknown ({e.peak_flops_source})")
        start = f"resuming at iter {e.start_iter:,}" if e.start_iter else "starting"
        self.line(f"run: {e.run_dir} · {cfg.get('name', '?')} · {format_count(e.params)} parameters "
                  f"({format_count(e.params_with_embeddings)} with position embeddings)")
        self.line(f"device: {e.device_name} ({e.device}, {fmt.gigabytes(e.device_memory_bytes)}) · {e.precision} · "
                  f"{'compiled' if e.compiled else 'eager'} · {peak}")
        if e.world_size > 1:  # several processes through torchrun: rank 0 prints for all of them
            names = ", ".join(f"{n}x {name}" for name, n in Counter(e.device_names).items())
            self.line(f"world: {e.world_size} processes (DDP) · {names} · tokens/s for all; MFU per card")
        self.line(f"{start} · {e.max_iters:,} iterations · {e.tokens_per_iter:,} tokens per iteration · "
                  f"dataset {e.dataset_tokens:,} tokens")
        self._run, self._last_vitals = e, None
        if e.vitals_source:
            self.line(f"vitals: {e.vitals_source}")

    def _step(self, e: ev.Step) -> None:
        if not e.log_point:  # a live point between log points is for the views: log_interval governs the print
            return
        of = f"/{self.max_iters:,}" if self.max_iters else ""
        mfu = f"MFU {fmt.percent(e.mfu)}" if e.mfu is not None else "MFU unknown"
        if e.mem_allocated_bytes is not None:  # CUDA: the allocator's figures against the card
            mem = (f"mem {fmt.gb_number(e.mem_reserved_bytes)}/{fmt.gigabytes(e.mem_total_bytes)} "
                   f"(peak {fmt.gb_number(e.mem_peak_bytes)})")
        else:
            mem = f"RSS {fmt.gigabytes(e.mem_reserved_bytes)}"
        eta = fmt.approx(fmt.duration(e.eta_seconds)) if e.eta_seconds is not None else "unknown"
        skipped = f" · {e.skipped_steps:,} steps skipped (not finite)" if e.skipped_steps else ""
        self.line(f"iter {e.iter:,}{of}: loss {e.loss:.4f} · lr {e.lr:.2e} · {fmt.rate(e.tokens_per_sec, 'tok')} · "
                  f"{e.step_seconds * 1000:.0f} ms/iter · {mfu} · {mem} · ETA {eta}{skipped}")
        vitals_due = self._last_vitals is None or e.time - self._last_vitals >= VITALS_EVERY
        if self._run is not None and self._run.vitals_source and vitals_due and e.rss_bytes is not None:
            self._last_vitals = e.time
            self.line("vitals: " + " · ".join(vitals_lines(self._run, e)))

    def _eval(self, e: ev.Eval) -> None:
        self._last_eval_iter = e.iter
        over = (f" · over {e.train_tokens:,} / {e.val_tokens:,} tokens (fixed windows)"
                if e.train_tokens is not None and e.val_tokens is not None else "")
        bpb = f" · {fmt.bpb(e.train_bpb)} / {fmt.bpb(e.val_bpb)}" if e.val_bpb is not None else ""
        self.line(f"eval {e.iter:,}: train loss {e.train_loss:.4f} · val loss {e.val_loss:.4f} "
                  f"(best {e.best_val_loss:.4f}){bpb} · {fmt.seconds(e.seconds)}{over}")

    def _hellaswag(self, e: ev.HellaSwag) -> None:
        self.line(f"hellaswag {e.iter:,}: acc_norm {e.acc_norm:.4f} · acc {e.acc:.4f} ({e.count:,} examples; "
                  f"GPT-2 124M {GPT2_124M_ACC_NORM}, chance {CHANCE}) · training paused {fmt.seconds(e.seconds)}")

    def _checkpoint(self, e: ev.CheckpointSaved) -> None:
        # held: training waited for the copy to CPU memory; the write itself ran beside training.
        held = f" · training held {fmt.seconds(e.held_seconds)}" if e.held_seconds is not None else ""
        self.line(f"checkpoint {e.iter:,} ({e.reason}): {e.path} · {fmt.gigabytes(e.bytes)} · "
                  f"{'written in ' if held else ''}{fmt.seconds(e.seconds)}{held}")

    def _sample(self, e: ev.Sample) -> None:
        self.line(f"sample {e.iter:,} (training paused {e.seconds:.2f} s): {fmt.one_line(e.prompt)} → "
                  f"{fmt.one_line(e.text)}")

    def _state(self, e: ev.StateChanged) -> None:
        self.line(f"{e.state} at iter {e.iter:,}")

    def _warning(self, e: ev.Warning) -> None:
        self.line(f"warning: {e.message}")

    def _finished(self, e: ev.Finished) -> None:
        val = ""
        if e.final_val_loss is not None:  # the last evaluation's: named by its iteration when it is not here
            at = self._last_eval_iter
            earlier = f" (last evaluated at iter {at:,})" if at is not None and at != e.iter else ""
            val = f" · val loss {e.final_val_loss:.4f}{earlier}"
        self.line(f"{e.reason} at iter {e.iter:,} after {fmt.duration(e.seconds)}{val}")

    # Failed is not printed: the CLI prints the error itself as one line (`fwtui: error: ...`).

    def finished_hint(self, run_dir: Path, reason: str | None) -> None:
        if reason == "stopped" and not any((run_dir / name).is_file() for name in ("ckpt.pt", "ckpt.prev.pt")):
            self.line(f"run directory: {run_dir} (stopped before its first checkpoint: the same command continues)")
            return
        self.line(f"run directory: {run_dir} (continue with: fwtui train --out {run_dir} --resume)"
                  if reason == "stopped" else f"run directory: {run_dir}")
