"""The Checkpointer: RUN/ckpt.pt written beside training instead of in its way.

`save()` copies the run's state to CPU memory (pinned on CUDA; on a CPU a copy, since the live tensors
change at the next step) and returns: training goes on while a writer thread writes that copy through
trainer.train.checkpoint.save_checkpoint (temp file, fsync, ckpt.prev.pt kept, atomic rename). So a kill
-9 at any moment leaves the last complete checkpoint, as before.

One write at a time: a save while a write is in flight first waits for it, and that wait counts as time
training was held. The writer thread never emits: sinks are not thread-safe. The trainer thread calls
`poll()` at each step boundary and `wait()` before a stop, at the end of a run and on a failure; the
CheckpointSaved event (held_seconds: the copy and any wait; write_seconds: the write) or the Warning of
a failed write goes out from there. A failed write keeps the old checkpoint and is retried at the next
interval; a must-succeed save (stop, final) that fails raises CheckpointError from `wait()`.

The copy's buffers are kept and reused by the next save (same shapes): pinned memory is slow to
allocate, and fresh pages cost page faults. That is one more copy of the state in CPU memory for the
run's life (for gpt2-124m with AdamW about 1.5 GB).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from trainer.errors import CheckpointError
from trainer.model.threads import one_cpu_thread
from trainer.train.controls import SAVING, Controls
from trainer.observe import events as ev
from trainer.train.checkpoint import (CKPT_FILE, PREV_FILE, capture_rng_state, free_bytes, save_checkpoint,
                                      size_text)


def checkpoint_payload(*, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                       config, iter_num: int, best_val_loss: float, data_position: dict, dataset: dict,
                       reason: str) -> dict:
    """The checkpoint's contents, nanoGPT's keys first; its tensors are the live ones (save() copies them).

    `model` is the uncompiled module (no _orig_mod. prefix); `config` a RunConfig."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "model_args": config.model_args(),
        "iter_num": iter_num,
        "best_val_loss": best_val_loss,
        "config": config.to_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "rng": capture_rng_state(),
        "data_position": data_position,
        "dataset": dataset,
        "fwtui": {"format": 1, "reason": reason, "time": time.time()},
    }


@dataclass
class _Write:
    """One checkpoint on its way to disk; the fields after `thread` are set by the writer thread."""

    iter: int
    reason: str
    must_succeed: bool
    held_seconds: float
    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)
    """Set by the writer when it is through. Waited on instead of Thread.join: on Python 3.11 a join that a
    KeyboardInterrupt cuts short marks the still-running thread as stopped, so a later join returns at once."""
    bytes: int | None = None
    write_seconds: float = 0.0
    error: CheckpointError | None = None
    weights_not_finite: bool = False


class Checkpointer:
    """Writes RUN/ckpt.pt asynchronously, one write at a time. `emit` takes the events (call the
    Checkpointer from the trainer thread only); `last_saved_iter` is the iteration of the checkpoint
    already on disk (a resume), None for none."""

    def __init__(self, run_dir: str | Path, *, emit: Callable[[ev.Event], None],
                 last_saved_iter: int | None = None, controls: Controls | None = None) -> None:
        self.path = Path(run_dir) / CKPT_FILE
        self.controls = controls or Controls()  # its activity says SAVING while a write is waited for
        self.emit = emit
        self.last_saved_iter = last_saved_iter
        self._in_flight: _Write | None = None
        self._abort = threading.Event()
        self._buffers: list[torch.Tensor] = []  # the last copy's tensors, in the order the payload is walked

    # --- what the trainer asks ----------------------------------------------------------------------------
    def covers(self, it: int) -> bool:
        """True when the checkpoint of iteration `it` is on disk or being written."""
        return self.last_saved_iter == it or (self._in_flight is not None and self._in_flight.iter == it)

    @property
    def writing(self) -> bool:
        return self._in_flight is not None

    def save(self, it: int, reason: str, payload: dict, *, must_succeed: bool = False) -> float:
        """Start writing `payload` as the checkpoint of iteration `it`; returns the seconds training was
        held (the wait for a write in flight, then the copy). When it returns, later changes to the live
        tensors no longer reach the file. A must-succeed save (stop, final) also waits for its own write
        and raises CheckpointError if it failed."""
        t0 = time.perf_counter()
        self.wait()  # one write at a time: may emit the previous one's event (or raise for a must-succeed one)
        snapshot = self._copy_to_cpu(payload)
        job = _Write(iter=it, reason=reason, must_succeed=must_succeed, held_seconds=time.perf_counter() - t0)
        job.thread = threading.Thread(target=self._write, args=(job, snapshot), name=f"checkpoint-{it}",
                                      daemon=True)  # a kill or a third Ctrl-C never hangs on a stuck disk
        self._in_flight = job
        job.thread.start()
        if must_succeed:
            self.wait()
        return job.held_seconds

    def _nothing_on_disk(self) -> bool:
        return not any((self.path.parent / name).is_file() for name in (CKPT_FILE, PREV_FILE))

    def refuse_bad_steps(self, it: int, bad_steps: int, model_state: dict, *, must_succeed: bool = False) -> None:
        """Do not save iteration `it`: the last `bad_steps` steps were not finite, so the run may be diverging
        and the last good checkpoint stays for --resume. Says NaN weights first when the live `model_state`
        holds them (on a GPU a sync per tensor: at such a boundary only)."""
        why = ("the model's weights hold NaN or inf" if not weights_finite(model_state)
               else f"the last {bad_steps} steps were not finite")
        self.refuse(it, why, must_succeed=must_succeed)

    def refuse(self, it: int, why: str, *, must_succeed: bool = False) -> None:
        """Do not save iteration `it` (`why`: the run is in a streak of bad steps, or its weights are not
        finite): the last good checkpoint stays. A warning, or CheckpointError for a must-succeed save.
        A write in flight (started before the bad steps: a good state) is waited for first, so the message
        names the checkpoint really on disk, not the one before it."""
        self.wait()  # (_finish clears _in_flight before it calls here: no recursion)
        kept = (f"{CKPT_FILE} (iter {self.last_saved_iter}) is kept" if self.last_saved_iter is not None
                else "no checkpoint was saved yet")
        message = f"checkpoint at iter {it} not saved: {why}; {kept}"
        if must_succeed:
            raise CheckpointError(f"{message}; lower learning_rate or raise warmup_iters (--set ...)")
        self.emit(ev.Warning(message=message))

    def poll(self) -> None:
        """At a step boundary: report a write that has finished (never blocks)."""
        job = self._in_flight
        if job is not None and job.done.is_set():
            self._finish(job)

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk or failed, and report it. A KeyboardInterrupt
        while waiting (a third Ctrl-C) aborts the write, leaving the previous checkpoint, and propagates."""
        job = self._in_flight
        if job is None:
            return
        try:
            with self.controls.doing(SAVING):  # a second Ctrl-C is told so
                job.done.wait()
        except BaseException:
            self.abort()
            raise
        self._finish(job)

    def settle(self, *, interrupted: bool = False) -> None:
        """On the way out of a run that failed: wait for the write in flight and report it (its own failure
        is a Warning here: the run's error comes next). `interrupted` (a third Ctrl-C) aborts it instead."""
        if interrupted:
            self.abort()
            return
        try:
            self.wait()
        except CheckpointError as err:
            self.emit(ev.Warning(message=f"checkpoint not saved: {err}"))

    def abort(self) -> None:
        """Give up the write in flight (its temp file is removed; ckpt.pt stays the last complete one)."""
        job = self._in_flight
        if job is None:
            return
        self._abort.set()
        job.done.wait(timeout=10.0)  # the writer stops at its next chunk; a stuck disk is not waited out
        self._in_flight = None
        self._abort.clear()

    # --- the trainer thread's side ------------------------------------------------------------------------
    def _finish(self, job: _Write) -> None:
        self._in_flight = None
        if job.weights_not_finite:
            # An update that overflowed (finite loss and norm, NaN weights after) must not replace the last
            # good checkpoint.
            self.refuse(job.iter, "the model's weights hold NaN or inf", must_succeed=job.must_succeed)
            return
        if job.error is not None:
            if job.must_succeed:
                raise job.error
            if self.last_saved_iter is None and self._nothing_on_disk():
                raise CheckpointError(f"the first checkpoint (iter {job.iter}) could not be saved: {job.error}; "
                                      "the run stops rather than train on with nothing saved") from None
            self.emit(ev.Warning(message=f"checkpoint not saved: {job.error}; retrying at the next interval"))
            return
        self.last_saved_iter = job.iter
        self.emit(ev.CheckpointSaved(iter=job.iter, path=str(self.path), bytes=job.bytes, seconds=job.write_seconds,
                                     reason=job.reason, held_seconds=job.held_seconds,
                                     write_seconds=job.write_seconds))

    def _copy_to_cpu(self, payload: Any) -> Any:
        """The payload with every tensor copied to CPU memory; tensors that share a view (the tied token
        embedding and output weights) share one copy, so the file stores them once, as torch.save would."""
        old, self._buffers = self._buffers, []
        memo: dict[tuple, torch.Tensor] = {}
        on_cuda = []

        def copy(item: Any) -> Any:
            if isinstance(item, torch.Tensor):
                key = (item.device, item.untyped_storage().data_ptr(), item.storage_offset(), tuple(item.shape),
                       tuple(item.stride()), item.dtype)
                if key not in memo:
                    memo[key] = self._buffer_for(item, old)
                    memo[key].copy_(item.detach(), non_blocking=item.is_cuda)
                    if item.is_cuda:
                        on_cuda.append(item.device)
                return memo[key]
            if isinstance(item, dict):
                return {k: copy(v) for k, v in item.items()}
            if isinstance(item, (list, tuple)):
                return type(item)(copy(v) for v in item)
            return item  # ints, floats, strings, None: immutable

        # One intra-op thread (trainer.model.threads): a copy is memory-bound, and an OpenMP team on a busy CPU
        # waits for its slowest thread at each of the ~450 tensors.
        with one_cpu_thread():
            snapshot = copy(payload)
        for device in set(on_cuda):
            torch.cuda.current_stream(device).synchronize()  # the copy is done before training goes on
        return snapshot

    def _buffer_for(self, tensor: torch.Tensor, old: list[torch.Tensor]) -> torch.Tensor:
        index = len(self._buffers)
        if index < len(old) and old[index].shape == tensor.shape and old[index].dtype == tensor.dtype:
            buffer = old[index]
        else:
            buffer = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu", pin_memory=tensor.is_cuda)
        self._buffers.append(buffer)
        return buffer

    # --- the writer thread --------------------------------------------------------------------------------
    def _write(self, job: _Write, snapshot: dict) -> None:
        t0 = time.perf_counter()
        try:
            if not weights_finite(snapshot.get("model", {})):
                job.weights_not_finite = True
                return
            job.bytes = save_checkpoint(self.path, snapshot, abort=self._abort)
        except CheckpointError as err:  # SaveAborted too
            job.error = err
        except BaseException as err:  # noqa: BLE001 - a writer that dies must still say why, on the trainer thread
            job.error = CheckpointError(f"could not write {self.path}: {type(err).__name__}: {err}; "
                                        "the previous checkpoint is kept")
        finally:
            job.write_seconds = time.perf_counter() - t0
            job.done.set()


def check_room(run_dir: str | Path, checkpoint_bytes: int) -> None:
    """Before the first step: CheckpointError when the run's folder has less free space than a save needs
    (twice the checkpoint: trainer.train.checkpoint.check_free_space), so that no checkpoint of this run could
    ever be written. `checkpoint_bytes`: ModelFigures.checkpoint_bytes (weights and optimizer state)."""
    free = free_bytes(Path(run_dir))
    if free is not None and free < 2 * checkpoint_bytes:
        raise CheckpointError(
            f"only {size_text(free)} free in {run_dir}: a checkpoint of this model is ≈ {size_text(checkpoint_bytes)} "
            "and a save needs twice that free, so no checkpoint of this run could be saved; free some space or "
            "use --out on a larger disk")


def weights_finite(model_state: dict) -> bool:
    """False when any floating-point tensor of a model's state dict is NaN or inf (on a GPU: a sync each).

    A NaN or inf anywhere makes the tensor's sum NaN or inf, so the sum is checked: 10x faster on a CPU than
    isfinite(t).all(), which builds a mask as large as the tensor (566 MB of float32 on one thread of
    the 2-core VM: 0.17 s against 1.7 s). Summed in float32, it could only overflow for weights summing past 3.4e38: never a good state."""
    return all(bool(torch.isfinite(torch.sum(t, dtype=torch.float32))) for t in model_state.values()
               if isinstance(t, torch.Tensor) and t.is_floating_point())
