"""What the Trainer does when a step or an evaluation fails: out of memory, or a compiler failing lazily.

A mixin of the Trainer (trainer.train.loop), which catches the error and hands `_triage` it inside its
`except` block, then calls `_recover` outside it: inside, the traceback still holds the failed step's
frames and their tensors (activations, logits), so emptying the cache there frees nothing.
"""

from __future__ import annotations

from trainer.errors import FwtuiError
from trainer.train.compiling import fallback_warning
from trainer.train.oom import (forget_unscaled, free_device_memory, is_out_of_memory, out_of_memory_error,
                               smaller_micro_batch)


class Recovery:
    """Needs the Trainer's config, info, dist, optimizer, scaler, loader, evaluator, eta, model, raw_model,
    compiled, auto_batch, on_config_change and warn."""

    def _triage(self, err: Exception) -> tuple[str, str, str]:
        """What to do about a failed step or evaluation, as plain strings that hold no tensor: ("oom" or
        "compile", the error's type name, its message). Anything else is raised again."""
        if is_out_of_memory(err):  # torch's OutOfMemoryError, or a RuntimeError from cuBLAS or compiled code
            return "oom", type(err).__name__, str(err)
        if not self.compiled or isinstance(err, FwtuiError):
            raise err
        inner = getattr(err, "inner_exception", None) or err.__cause__  # dynamo wraps the back end's own error
        return "compile", type(err).__name__, f"{type(inner).__name__}: {inner}" if inner is not None else str(err)

    def _recover(self, failure: tuple[str, str, str]) -> None:
        kind, name, message = failure
        self.optimizer.zero_grad(set_to_none=True)
        forget_unscaled(self.scaler)  # fp16: a failure after unscale_ would fail the retry's unscale_
        if kind == "oom":
            return self._recover_from_oom()
        # torch.compile fails lazily, at the first forward or backward (or a recompile at eval): eager from here
        self.model, self.compiled = self.dist.wrap(self.raw_model), False
        self.eta.skip_next(2)
        self.warn(fallback_warning(name, message))

    def _recover_from_oom(self) -> None:
        cfg = self.config
        free_device_memory()
        b, a = cfg.batch_size, cfg.gradient_accumulation_steps
        smaller = smaller_micro_batch(b)
        if not self.auto_batch or smaller is None or self.dist.active:  # ranks must keep one micro-batch shape
            raise out_of_memory_error(self.info.name, b, cfg.block_size, a) from None
        new_a = a * b // smaller
        self.config = cfg.replace(batch_size=smaller, gradient_accumulation_steps=new_a)
        self.loader.set_batch_size(smaller)
        self.evaluator.set_batch_size(smaller)  # the same windows, in smaller batches
        self.eta.skip_next(2)
        self.warn(f"out of memory at micro-batch {b}: continuing with batch_size {smaller} x "
                  f"{new_a} accumulation steps (same {cfg.tokens_per_iter:,} tokens per iteration)")
        if self.on_config_change is not None:
            self.on_config_change(self.config)
