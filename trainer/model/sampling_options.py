"""What a sample may ask for, checked in one place before a model is loaded (no torch here, so the command
line can use it too): every way of sampling (`fwtui sample`, the app's `s`, a control/ request) goes through
`check_sampling`, and a bad value is one line instead of a hang or a silent change of meaning."""

from __future__ import annotations

import math

from trainer.errors import ConfigError

MAX_NEW_TOKENS = 10_000
"""About 7,500 words: more than any block_size we train, and at the CPU's ~700 tokens/s (bench/sample.py) about
15 s; 100 million tokens was accepted before and printed nothing for days."""


def check_sampling(max_new_tokens: int, temperature: float, top_k: int | None) -> None:
    """Raise ConfigError naming the value and the range. top_k None or 0 samples from the whole vocabulary."""
    if not 0 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise ConfigError(f"max_new_tokens = {max_new_tokens:,}: must be from 0 to {MAX_NEW_TOKENS:,}; "
                          "ask for several samples instead of one very long one")
    if not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"temperature = {temperature}: must be a finite number, 0 (greedy) or more, e.g. 0.8")
    if top_k is not None and top_k < 0:
        raise ConfigError(f"top_k = {top_k}: must be 0 (the whole vocabulary) or more, e.g. 200")
