"""The Sampler: text from the live model at a step boundary, as the `s` key and the control channel ask.

It runs on the trainer thread between steps, so training waits for it: the Sample event's `seconds` is
that pause. It never touches the training RNG or batches (trainer.model.sampling draws from its own
generator and puts the module back in train mode), so a run's losses are the same with or without
samples. The tokenizer is loaded at the first sample only: training never needs it. A stop (Ctrl-C,
SIGTERM) cuts a long sample at its next token: the text so far goes out, and the stop's checkpoint follows.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from trainer.observe import events as ev
from trainer.train.controls import SAMPLING, Controls, SampleRequest


class Sampler:
    """Samples from `model` (the uncompiled module) on `device` in the run's `precision` ("float32",
    "bfloat16", "float16"); `emit` takes the Sample event, or a Warning when sampling fails. A stop in
    `controls` (this process's) cuts a sample at its next token."""

    def __init__(self, model: torch.nn.Module, controls: Controls | None = None, *, device: str | torch.device,
                 precision: str, emit: Callable[[ev.Event], None], tokenizer_file: str | None = None) -> None:
        self.model = model
        self.controls = controls or Controls()  # this process's stop flag (it cuts a sample) and activity
        self.device = device
        self.precision = precision
        self.emit = emit
        self.tokenizer_file = tokenizer_file
        self._encoding = None

    def sample(self, request: SampleRequest, it: int) -> float:
        """Serve one request at iteration `it`; returns the seconds training was paused. A failure is a
        Warning, never the end of the run."""
        t0 = time.perf_counter()
        try:
            from trainer.model.sampling import generate_text

            cut: list[bool] = []  # set when the stop ended the text

            def stopping() -> bool:
                if self.controls.stop_requested:
                    cut.append(True)
                return bool(cut)

            with self.controls.doing(SAMPLING):
                text = generate_text(self.model, self._tokenizer(), request.prompt,
                                     max_new_tokens=request.max_new_tokens, temperature=request.temperature,
                                     top_k=request.top_k, device=self.device, precision=self.precision,
                                     stopping=stopping)
        except Exception as err:  # noqa: BLE001 - a failed sample never stops training
            self.emit(ev.Warning(message=f"sample failed: {type(err).__name__}: {err}"))
            return time.perf_counter() - t0
        seconds = time.perf_counter() - t0
        if cut:
            self.emit(ev.Warning(message=f"the sample at iter {it} was cut short: the run is stopping"))
        self.emit(ev.Sample(iter=it, prompt=request.prompt, text=text, seconds=seconds))
        return seconds

    def _tokenizer(self):
        if self._encoding is None:
            from trainer.data.tokenizer import get_encoding

            self._encoding = get_encoding(self.tokenizer_file)
        return self._encoding
