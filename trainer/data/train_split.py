"""The training split's size before a run, for the plan's epochs: what the run divides by (train.bin's tokens,
RunStarted.dataset_tokens), not the whole corpus with its validation share.

Exact when the cache already holds these inputs prepared with these settings (trainer.data.ingest.find_prepared);
else estimated from the corpus's count (trainer.data.token_count) less the validation tokens prepare is expected
to hold out: the row hash's share (val_fraction of the tokens), or, when that is less, the top-up to
min(MIN_VAL_TOKENS, MAX_VAL_SHARE of the corpus) that trainer.data.prepared_writer makes with whole documents.
"""

from __future__ import annotations

from trainer.data.prepared_writer import MAX_VAL_SHARE, MIN_VAL_TOKENS
from trainer.data.token_count import TokenCount
from trainer.errors import FwtuiError


def expected_val_tokens(prepared_tokens: int, val_fraction: float) -> int:
    """≈ validation tokens of a corpus of `prepared_tokens` (documents + one end-of-text each):
    max(val_fraction × total, min(MIN_VAL_TOKENS, MAX_VAL_SHARE × total))."""
    return round(max(val_fraction * prepared_tokens, min(MIN_VAL_TOKENS, MAX_VAL_SHARE * prepared_tokens)))


def training_tokens(spec: str, count: TokenCount, *, text_column: str = "text",
                    val_fraction: float = 0.0005) -> tuple[int, bool, str]:
    """(tokens of the training split, exact, where the figure comes from) for the data path `spec`."""
    try:
        from trainer.data.ingest import find_prepared

        prepared = find_prepared([spec], text_column=text_column, val_fraction=val_fraction)
    except (FwtuiError, OSError):  # no cache to look in: the estimate below
        prepared = None
    if prepared is not None:
        return prepared.train_tokens, True, f"exact: the training split as prepared in {prepared.dir}"
    held_out = expected_val_tokens(count.prepared_tokens, val_fraction)
    return (count.prepared_tokens - held_out, False,
            f"{count.how}; + 1 end-of-text token a document; less ≈ {held_out:,} held out for validation")
