"""Bits per byte: a loss that does not depend on the tokenizer, so runs with other vocabularies compare.

A loss in nats per token depends on how much text a token holds. Bits per UTF-8 byte divides that out
exactly: over the evaluated windows, the sum of the target tokens' losses (nats) / ln 2 / the UTF-8 byte
length of those same target tokens. Not an average bytes-per-token guess: each token's byte length comes
from the tokenizer (`token_byte_lengths`, a table built once), and the windows are fixed (trainer.train.
evaluator), so their byte count is counted once too. GPT-2's BPE is byte level: a token's bytes are a
piece of the UTF-8 text, and the pieces of a window's targets concatenate to exactly its text.

`<|endoftext|>` is not text: it counts 0 bytes, while its loss (predicting where a document ends) stays
in the sum, as a whole document's cost is charged to its bytes.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from trainer.data.tokenizer import EOT

TABLE_SIZE = 1 << 16
"""The table covers every uint16 a data file can hold (ids past the vocabulary count 0 bytes)."""


@functools.lru_cache(maxsize=1)
def token_byte_lengths() -> np.ndarray:
    """(65,536,) int64: the UTF-8 byte length of each token id of GPT-2's r50k_base; 0 for <|endoftext|>.

    Built once per process from the tokenizer (about 30 ms); read-only."""
    from trainer.data.tokenizer import get_encoding

    encoding = get_encoding()
    table = np.zeros(TABLE_SIZE, dtype=np.int64)
    for token in range(encoding.n_vocab):
        if token != EOT:
            table[token] = len(encoding.decode_single_token_bytes(token))
    table.flags.writeable = False
    return table


def target_bytes(windows: np.ndarray, table: np.ndarray) -> int:
    """UTF-8 bytes of the targets of `windows` (n, T + 1) uint16: the tokens 1..T of each window."""
    if not len(windows):
        return 0
    return int(table[windows[:, 1:]].sum())


def bits_per_byte(loss_sum_nats: float, n_bytes: int) -> float | None:
    """Summed loss (nats) over text of `n_bytes` UTF-8 bytes -> bits per byte; None for no bytes."""
    if n_bytes <= 0:
        return None
    return loss_sum_nats / math.log(2) / n_bytes  # a non-finite loss stays non-finite
