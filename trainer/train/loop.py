"""The training loop: nanoGPT's train.py as a Trainer that reports events and obeys controls.

Iteration `it` runs optimizer step `it` (0-based). Between steps is a *step boundary*: evaluations, the
checkpoints, controls (stop, pause, eval, checkpoint, sample) happen there and nowhere else. A checkpoint
taken at boundary `it` stores iter_num = it (steps 0..it-1 done), so a resume starts with step `it`.

Host syncs: none in a step. A non-finite loss or norm skips the update on the device (trainer.train.
bad_steps: a found-inf flag the fused AdamW reads, as under GradScaler). The loss, the norm and the bad-step
counters reach the host at log points (every log_interval steps, one `tolist`) and before a save, where the
divergence rule is checked; an evaluation syncs once. So on a GPU the host runs ahead between log points,
and a window's step time is measured at its end (StepMetrics); between them, trainer.train.live_figures.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from trainer.observe import events as ev
from trainer.train.recovery import Recovery
from trainer.data.batches import TRAIN_STREAM, BatchLoader
from trainer.train.checkpoint import CKPT_FILE, load_checkpoint, restore_rng_state
from trainer.train.checkpointer import Checkpointer, checkpoint_payload
from trainer.train.sampler import Sampler
from trainer.train.hellaswag import HellaSwagAtBoundary
from trainer.config import RunConfig
from trainer.train.controls import Controls, Requests
from trainer.train.distributed import Dist, SharedControls, agreement_due, shared_controls
from trainer.model.formulas import figures_for
from trainer.observe.hardware import DeviceInfo, detect_device
from trainer.observe.metrics import EtaEstimator, StepMetrics
from trainer.model.gpt import GPT, ModelArgs, strip_compile_prefix
from trainer.model.precision import autocast_for, peak_for_precision, precision_for
from trainer.train.optimizers import build_optimizer
from trainer.train.resume import PreparedLike, best_val_loss_of, check_resume, dataset_identity
from trainer.train.schedule import describe_schedule_change, lr_at
from trainer.data.bpb import token_byte_lengths
from trainer.train.evaluator import EvalResult, Evaluator
from trainer.train.live_figures import LiveFigures
from trainer.train.compiling import compile_model
from trainer.train.bad_steps import BadSteps, TrainingDiverged


class Trainer(Recovery):
    def __init__(self, config: RunConfig, data: PreparedLike, run_dir: str | Path, *, sink: ev.EventSink,
                 controls: Controls | None = None, device_info: DeviceInfo | None = None,
                 peak_tflops: float | None = None, resume: bool = False, auto_batch: bool = False,
                 on_config_change: Callable[[RunConfig], None] | None = None, dist: Dist | None = None) -> None:
        self.config = config
        self.data = data
        self.run_dir = Path(run_dir)
        self.sink = sink
        self.dist = dist or Dist()  # torchrun's rank and world size (trainer.train.distributed); 1 by default
        self.controls = shared_controls(controls or Controls(), self.dist)  # rank 0's decisions, on every rank
        self.asked = getattr(self.controls, "inner", self.controls)  # this process's stop flag: cuts long work short
        self.info = device_info or detect_device(config.device, peak_tflops)
        self.resume = resume
        self.auto_batch = auto_batch
        self.on_config_change = on_config_change
        self.iter_num = 0
        self.best_val_loss = math.inf
        self.last_losses: dict[str, float] = {}
        self.eta = EtaEstimator()
        self.checkpointer = Checkpointer(self.run_dir, emit=self.emit, controls=self.asked)  # beside training
        self._started = time.perf_counter()

    # --- events ------------------------------------------------------------------------------------------
    def emit(self, event: ev.Event) -> None:
        """Hand an event to the sink; a failing sink never stops training, and is said once, not hidden.

        trainer.runs.launch gives a FanOut, which never raises (it warns the other sinks itself). A sink that raises
        anyway (a wrapper's own work failing after the event went out, a test's sink) gets one Warning
        through the same sink per failure episode: a wrapper passes it on to the faces.
        """
        try:
            self.sink(event)
        except Exception as err:  # noqa: BLE001 - a broken sink never stops training
            if getattr(self, "_sink_failing", False):
                return
            self._sink_failing = True
            try:
                self.sink(ev.Warning(message=f"the run's event sink failed at a {event.kind} event "
                                             f"({type(err).__name__}: {err}); training goes on"))
            except Exception:  # noqa: BLE001 - nowhere left to say it
                pass
        else:
            self._sink_failing = False

    def warn(self, message: str) -> None:
        self.emit(ev.Warning(message=message))

    # --- setup -------------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg, info = self.config, self.info
        self.device = info.device
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        if info.is_cuda:
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = True  # TF32 for any fp32 matmul left outside autocast
            torch.backends.cudnn.allow_tf32 = True
            torch.set_float32_matmul_precision("high")
        self.precision = precision_for(cfg.dtype, info)  # the one decision (trainer.model.precision)
        self.autocast = autocast_for(self.precision, info.device)
        self.scaler = torch.amp.GradScaler(info.device.split(":")[0], enabled=self.precision == "float16")

        self.raw_model = GPT(ModelArgs.from_dict(cfg.model_args())).to(self.device)
        if (seed := self.dist.dropout_seed(cfg.seed, 0)) is not None:
            torch.manual_seed(seed)  # the weights above start equal on every rank; dropout masks differ
        self.sampler = Sampler(self.raw_model, self.asked, device=self.device, precision=self.precision, emit=self.emit)
        self.hellaswag = HellaSwagAtBoundary(cfg, self.device, self.precision, self.emit, self.warn, self.eta,
                                             ranks=self.dist,  # rank r scores examples r, r+N, ...
                                             stopping=lambda: self.asked.stop_requested)
        self.optimizer = build_optimizer(cfg, self.raw_model, self.device)  # the recipe's (trainer.train.optimizers)
        self.nonfinite = BadSteps(self.device)  # non-finite steps, found and counted on the device
        self.params = [p for p in self.raw_model.parameters() if p.requires_grad]
        loader_args = dict(block_size=cfg.block_size, batch_size=cfg.batch_size, seed=cfg.seed, device=self.device)
        self.loader = BatchLoader(self.data.train_path, stream=TRAIN_STREAM, rank=self.dist.rank,
                                  world_size=self.dist.world_size, **loader_args)  # rank r: global batches r, r+N, ...
        self.evaluator = Evaluator(train_path=self.data.train_path, val_path=self.data.val_path,
                                   block_size=cfg.block_size, batch_size=cfg.batch_size, eval_iters=cfg.eval_iters,
                                   device=self.device, autocast=self.autocast,
                                   ranks=self.dist, controls=self.asked,  # rank r: windows r, r+N, ...; summed
                                   token_bytes=token_byte_lengths())  # bits per byte beside each loss
        self.identity = dataset_identity(self.data)
        if self.resume:
            self._load_resume_state()
        self.start_iter = self.iter_num

        self.model, self.compiled = compile_model(self.raw_model, wanted=cfg.compile if cfg.compile is not None
                                                  else info.is_cuda, mode=cfg.compile_mode, warn=self.warn)
        # DDP over the compiled model (several ranks only), as torch advises: dynamo splits the graph at DDP's
        # buckets, so all-reduce overlaps the backward (tests/test_gpu_paths_cpu.py measures the split)
        self.model = self.dist.wrap(self.model)

    def _load_resume_state(self) -> None:
        ckpt = load_checkpoint(self.run_dir, on_warning=self.warn)
        check_resume(ckpt, self.config, self.identity, self.run_dir / CKPT_FILE)
        self.raw_model.load_state_dict(strip_compile_prefix(ckpt["model"]))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])
        self.iter_num = int(ckpt["iter_num"])
        self.checkpointer.last_saved_iter = self.iter_num
        self.best_val_loss = best_val_loss_of(ckpt)
        ran = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None
        if change := describe_schedule_change(ran, self.config, self.iter_num,
                                              max_iters_before=(ran or {}).get("max_iters")):
            self.warn(change)
        if "data_position" in ckpt and (note := self.loader.load_state({"world_size": 1, **ckpt["data_position"]})):
            self.warn(note)
        if "rng" in ckpt:
            restore_rng_state(ckpt["rng"])  # rank 0's, saved alone: each rank's own stream follows
        if (seed := self.dist.dropout_seed(self.config.seed, self.iter_num)) is not None:
            torch.manual_seed(seed)

    # --- the run -----------------------------------------------------------------------------------------
    def run(self) -> str:
        """Train to max_iters or until stopped; returns "completed" or "stopped". Raises FwtuiError."""
        try:
            return self._run()
        except BaseException as err:  # a failure waits for the checkpoint in flight; a third Ctrl-C aborts it
            self.checkpointer.settle(interrupted=isinstance(err, KeyboardInterrupt))
            raise

    def _run(self) -> str:
        self.setup()
        cfg, info = self.config, self.info
        self.figures = figures_for(cfg)  # parameters, FLOPs a token, bytes of state: counted once, handed on
        counts, self.flops_per_token = self.figures.params, self.figures.flops_per_token
        # MFU divides by the peak of the precision that runs (fp32 on CUDA: the TF32 peak), not the card's bf16.
        self.peak_flops, self.peak_source = peak_for_precision(info.peak_flops, info.peak_source, self.precision,
                                                               info.is_cuda)
        self.emit(ev.RunStarted(
            run_dir=str(self.run_dir), config=cfg.to_dict(), params=counts.nanogpt,
            params_with_embeddings=counts.total, device=info.device, device_name=info.name,
            device_memory_bytes=info.memory_bytes, world_size=self.dist.world_size,
            device_names=self.dist.device_names or [info.name], peak_flops=self.peak_flops,
            peak_flops_source=self.peak_source,
            flops_per_token=self.flops_per_token, tokens_per_iter=cfg.tokens_per_iter,
            dataset_tokens=self.data.train_tokens, start_iter=self.start_iter, max_iters=cfg.max_iters,
            precision=self.precision, compiled=self.compiled, data_dir=str(self.data.dir)))
        self.raw_model.train()
        self.metrics = StepMetrics(
            tokens_per_iter=cfg.tokens_per_iter, flops_per_token=self.flops_per_token, peak_flops=self.peak_flops,
            dataset_tokens=self.data.train_tokens, max_iters=cfg.max_iters, eval_interval=cfg.eval_interval,
            always_save_checkpoint=cfg.always_save_checkpoint, device=self.device, memory_bytes=info.memory_bytes,
            world_size=self.dist.world_size, eta=self.eta, started=self._started)
        self.live = LiveFigures(self.metrics, self.device, lambda i: lr_at(i, self.config), first_iter=self.iter_num)
        it = self.iter_num
        while True:
            self.iter_num = it
            if self._step_boundary(it):
                return "stopped"
            if it >= self.config.max_iters:
                break
            lr = lr_at(it, self.config)
            t0 = time.perf_counter()
            loss, norm = self._guarded_step(lr)  # device tensors: no sync
            log = it % self.config.log_interval == 0 or it == self.config.max_iters - 1
            read = self.nonfinite.read(loss, norm) if log else None  # the host's one look between boundaries
            self.metrics.add_step(time.perf_counter() - t0)  # at a log point: up to the device's finish
            if read is not None:
                self._emit_step(it, lr, read)
            else:  # between log points: Progress and live points, read without waiting (trainer.train.live_figures)
                for event in self.live.after_step(it, loss, norm, self.nonfinite.skipped):
                    self.emit(event)
            it += 1
        # The end: a final evaluation and checkpoint at iter max_iters.
        self._evaluate_and_save(it, final=True)
        self.emit(ev.Finished(iter=it, reason="completed", seconds=time.perf_counter() - self._started,
                              final_train_loss=self.last_losses.get("train"),
                              final_val_loss=self.last_losses.get("val")))
        return "completed"

    def _emit_step(self, it: int, lr: float, read: list[float]) -> None:
        """At a log point, with BadSteps.read's figures: skips warned about, divergence checked, the Step."""
        loss, norm, in_a_row, longest, skipped = read[0], read[1], *(int(v) for v in read[2:])
        first = self.live.logged(it)  # the first iteration since the last log point
        if warning := self.nonfinite.warning(first, it, loss, norm, in_a_row, skipped):
            self.warn(warning)
        if streak := BadSteps.streak(first, it, in_a_row, longest):
            raise self._diverged(streak)
        self.emit(self.metrics.step_event(it, loss=loss, grad_norm=norm, lr=lr, skipped_steps=skipped))

    # --- one optimizer step ------------------------------------------------------------------------------
    def _step(self, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward/backward over the micro-batches, clip, step unless non-finite; nothing waits for the device.
        Returns 0-dim device tensors: mean loss (every micro-batch of every rank), gradient norm before clipping."""
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        accum = self.dist.split_accumulation(cfg.gradient_accumulation_steps)  # micro-steps on this rank
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(accum):
            self.dist.set_sync(self.model, micro == accum - 1)  # DDP: all-reduce on the last backward only
            x, y = self.loader.next()  # (B, T) each, already on the device
            with self.autocast:
                _, loss = self.model(x, y)
            self.loader.prefetch()  # the next micro-batch's host work and copy overlap the backward pass
            self.scaler.scale(loss / accum).backward()  # mean over micro-batches
            loss_sum += loss.detach().float()
        loss = self.dist.mean(loss_sum / accum)  # the step's mean loss over every micro-batch of every rank
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        loss, norm = loss.detach().float(), norm.detach().float()
        self.nonfinite.step(self.optimizer, self.scaler, loss, norm)  # skipped on the device when non-finite
        self.optimizer.zero_grad(set_to_none=True)
        return loss, norm

    def _guarded_step(self, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """`_step`, with the compile fallback and the out-of-memory handling around it."""
        position = self.loader.position
        try:
            return self._step(lr)
        except Exception as err:
            failure = self._triage(err)
        # Recovered here, outside the except block: there the traceback still held the failed step's frames
        # and their tensors (activations, logits), so emptying the cache freed nothing.
        self._recover(failure)
        self.loader.load_state({"position": position})  # retry the same step on the same batches
        return self._guarded_step(lr)

    def _check_divergence(self, it: int) -> int:
        """Before a save at boundary `it` (a sync is due): stop on a diverged streak; else bad steps in a row."""
        in_a_row, longest, _ = (int(v) for v in self.nonfinite.read())
        if streak := BadSteps.streak(None, it - 1, in_a_row, longest):
            raise self._diverged(streak)
        return in_a_row

    def _diverged(self, iters: str) -> TrainingDiverged:
        self.checkpointer.settle()  # a write in flight started before the bad steps: a good state
        return BadSteps.diverged(iters, self.checkpointer.last_saved_iter, self.config.learning_rate, CKPT_FILE)

    # --- checkpoints (trainer.train.checkpointer: copied here, written by its thread) ---------------------
    def _save(self, it: int, reason: str, must_succeed: bool = False) -> None:
        """Checkpoint `it`: training is held for the copy only (the ETA counts that); a must-succeed save
        (stop, final) waits for its write and raises if it fails. Never during a streak of bad steps."""
        if not self.dist.is_main:  # rank 0 alone writes ckpt.pt (with every rank's data position)
            self.checkpointer.last_saved_iter = it
        elif bad_steps := self._check_divergence(it):
            self.checkpointer.refuse_bad_steps(it, bad_steps, self.raw_model.state_dict(), must_succeed=must_succeed)
        else:
            payload = checkpoint_payload(model=self.raw_model, optimizer=self.optimizer, scaler=self.scaler,
                                         config=self.config, iter_num=it, best_val_loss=self.best_val_loss,
                                         data_position=self.loader.state(), dataset=self.identity, reason=reason)
            self.eta.add_checkpoint(self.checkpointer.save(it, reason, payload, must_succeed=must_succeed))

    # --- step boundaries ---------------------------------------------------------------------------------
    def _step_boundary(self, it: int) -> bool:
        """Evaluations, checkpoints and controls between steps; True when the run must stop here."""
        cfg = self.config
        self.checkpointer.poll()  # a write that finished since the last boundary: its event goes out now
        if isinstance(self.controls, SharedControls) and agreement_due(it, cfg, self.start_iter):  # several ranks
            self.controls.sync(self.loader.position)
            self.loader.rank_positions = self.controls.positions
        resumed_here = self.resume and it == self.start_iter  # evaluated and saved just before the stop
        if (it % cfg.eval_interval == 0 and it < cfg.max_iters and not resumed_here
                and not self.controls.stop_requested):
            self._evaluate_and_save(it)
        if self.hellaswag.due(it) and not resumed_here and not self.controls.stop_requested:
            self.hellaswag.run(self.raw_model, it)
        self._serve(self.controls.take(), it)
        if self.controls.paused and not self.controls.stop_requested:
            self.emit(ev.StateChanged(iter=it, state="paused"))
            while self.controls.wait_while_paused(0.2):
                self._serve(self.controls.take(), it)
            self._serve(self.controls.take(), it)
            self.emit(ev.StateChanged(iter=it, state="running"))
        if self.controls.stop_requested:
            self.checkpointer.wait()  # the write in flight first; if it failed, the stop saves again
            if self.checkpointer.last_saved_iter != it:
                self._save(it, "stop", must_succeed=True)
            self.emit(ev.Finished(iter=it, reason="stopped", seconds=time.perf_counter() - self._started,
                                  final_train_loss=self.last_losses.get("train"),
                                  final_val_loss=self.last_losses.get("val")))
            return True
        return False

    def _serve(self, requests: Requests, it: int) -> None:
        if requests.evaluate:
            self._evaluate_and_save(it, save=False)
        if requests.checkpoint:
            self._save(it, "requested")
        if requests.hellaswag:
            self.hellaswag.run(self.raw_model, it)
        for request in requests.samples:
            self.sampler.sample(request, it)

    def _evaluate(self) -> EvalResult | None:
        return self.evaluator.evaluate(self.model)  # the fixed windows of each split (trainer.train.evaluator)

    def _evaluate_and_save(self, it: int, final: bool = False, save: bool = True) -> None:
        t0 = time.perf_counter()
        while True:
            try:
                result = self._evaluate()
                break
            except Exception as err:  # as in a step: one clear error, or (--auto-batch) smaller, or eager
                failure = self._triage(err)
            self._recover(failure)  # outside the except block (see _guarded_step)
        if result is None:  # cut by a stop (on any rank): the stop's checkpoint now, the model as trained
            if isinstance(self.controls, SharedControls):
                self.controls.agree_stop()  # every rank saw the cut in the evaluation's all_reduce
            return self._save(it, "final", must_succeed=True) if final else None
        seconds = time.perf_counter() - t0
        self.eta.add_eval(seconds)
        losses = self.last_losses = result.losses
        improved = losses["val"] < self.best_val_loss
        self.best_val_loss = min(self.best_val_loss, losses["val"])
        self.emit(ev.Eval(iter=it, train_loss=losses["train"], val_loss=losses["val"],
                          best_val_loss=self.best_val_loss, seconds=seconds,
                          train_tokens=result.tokens["train"], val_tokens=result.tokens["val"],
                          train_bpb=result.bpb["train"] if result.bpb else None,
                          val_bpb=result.bpb["val"] if result.bpb else None))
        if final:
            self._save(it, "final", must_succeed=True)
        elif save and it > 0 and (self.config.always_save_checkpoint or improved):
            self._save(it, "eval" if self.config.always_save_checkpoint else "improved")
