"""What a step boundary does besides controls: evaluate, checkpoint, sample (a mixin of the Trainer).

These run between optimizer steps only, so none of them can see a half-done step. None of them touches
the training RNG or the training batches: evaluation has its own batch streams, sampling its own
generator, so a run's losses are the same whether or not anyone evaluated, saved or sampled.
"""

from __future__ import annotations

import time

import torch

from trainer.observe import events as ev
from trainer.train.checkpoint import CKPT_FILE, capture_rng_state, save_checkpoint
from trainer.train.controls import SampleRequest
from trainer.errors import CheckpointError


class BoundaryWork:
    """Needs the Trainer's attributes: config, model, raw_model, optimizer, scaler, loader, eval_loaders,
    autocast, device, run_dir, identity, best_val_loss, eta, emit/warn, _bad_steps (non-finite steps in a
    row) and _last_saved_iter."""

    @torch.no_grad()
    def _evaluate(self) -> dict[str, float]:
        """Mean loss over eval_iters batches of each split; the same batches every time (own streams)."""
        self.model.eval()
        try:
            out = {}
            for split, loader in self.eval_loaders.items():
                loader.load_state({"position": 0})
                losses = torch.zeros(self.config.eval_iters, device=self.device)
                for k in range(self.config.eval_iters):
                    x, y = loader.next()
                    with self.autocast:
                        _, loss = self.model(x, y)
                    losses[k] = loss
                out[split] = losses.mean().item()  # one sync per split
            return out
        finally:
            self.model.train()

    def checkpoint_payload(self, it: int, reason: str) -> dict:
        cfg = self.config
        return {
            "model": self.raw_model.state_dict(),  # the uncompiled module: no _orig_mod. prefix
            "optimizer": self.optimizer.state_dict(),
            "model_args": cfg.model_args(),
            "iter_num": it,
            "best_val_loss": self.best_val_loss,
            "config": cfg.to_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": capture_rng_state(),
            "data_position": self.loader.state(),
            "dataset": self.identity,
            "fwtui": {"format": 1, "reason": reason, "time": time.time()},
        }

    def _weights_finite(self) -> bool:
        """False when any weight is NaN or inf (one device sync, at save time only)."""
        with torch.no_grad():
            return bool(torch.stack([torch.isfinite(p).all() for p in self.raw_model.parameters()]).all())

    def _save(self, it: int, reason: str, must_succeed: bool = False) -> None:
        t0 = time.perf_counter()
        path = self.run_dir / CKPT_FILE
        weights_finite = self._weights_finite()
        if not weights_finite or self._bad_steps:
            # An update that overflowed (finite loss and norm, NaN weights after), or a run in a streak of
            # non-finite steps (it may be diverging): neither may replace the last good checkpoint, which a
            # stop for divergence leaves for --resume.
            why = ("the model's weights hold NaN or inf" if not weights_finite
                   else f"the last {self._bad_steps} steps were not finite")
            kept = (f"{CKPT_FILE} (iter {self._last_saved_iter}) is kept" if self._last_saved_iter is not None
                    else "no checkpoint was saved yet")
            message = f"checkpoint at iter {it} not saved: {why}; {kept}"
            if must_succeed:
                raise CheckpointError(f"{message}; lower learning_rate or raise warmup_iters (--set ...)")
            self.warn(message)
            return
        try:
            size = save_checkpoint(path, self.checkpoint_payload(it, reason))
        except CheckpointError as err:
            if must_succeed:
                raise
            self.warn(f"checkpoint not saved: {err}; retrying at the next interval")
            return
        seconds = time.perf_counter() - t0
        self.eta.add_checkpoint(seconds)
        self._last_saved_iter = it
        self.emit(ev.CheckpointSaved(iter=it, path=str(path), bytes=size, seconds=seconds, reason=reason))

    def _sample(self, request: SampleRequest, it: int) -> None:
        t0 = time.perf_counter()
        try:
            from trainer.model.sampling import generate_text

            if self._encoding is None:
                from trainer.data.tokenizer import get_encoding

                self._encoding = get_encoding()  # only now: training never needs the tokenizer
            # On this thread, between steps: training waits for it, so the Sample's `seconds` is the pause.
            text = generate_text(self.raw_model, self._encoding, request.prompt,
                                 max_new_tokens=request.max_new_tokens, temperature=request.temperature,
                                 top_k=request.top_k, device=self.device, precision=self.precision)
        except Exception as err:  # noqa: BLE001 - a failed sample never stops training
            self.warn(f"sample failed: {type(err).__name__}: {err}")
            return
        self.emit(ev.Sample(iter=it, prompt=request.prompt, text=text, seconds=time.perf_counter() - t0))
