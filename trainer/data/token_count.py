"""How many GPT-2 tokens parquet files hold, in seconds, without tokenizing them.

FineWeb stores each document's GPT-2 token count in `token_count`: when every file has it with no nulls,
the sum is exact and only that int64 column is read. Otherwise the text column's UTF-8 bytes are summed
and divided by a bytes-per-token ratio measured by tokenizing a ~1 MB sample of these same files (or,
with no tokenizer at hand, the ratio measured on shakespeare-fineweb.parquet), and labelled an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trainer.errors import DataError, TokenizerError
from trainer.data.parquet_source import check_text_column, column_text_bytes, open_parquet, resolve_paths, to_texts

FALLBACK_BYTES_PER_TOKEN = 3.23
"""Measured on ../shared/data/shakespeare-fineweb.parquet: 5,053,837 UTF-8 bytes / 1,563,594 tokens."""
SAMPLE_BYTES = 1 << 20
"""Text tokenized to measure the ratio: ~0.3 s on one core, within a few percent of the whole."""


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    """GPT-2 tokens of the documents' text, without the <|endoftext|> prepare adds after each."""
    exact: bool
    documents: int
    """Rows in the files (null and empty documents included)."""
    how: str
    """Where the number comes from, for the user: "exact: ..." or "estimate: ..."."""

    @property
    def prepared_tokens(self) -> int:
        """What prepare will write: one <|endoftext|> per document more (null/empty ones are skipped)."""
        return self.tokens + self.documents


def combine(counts: Sequence[TokenCount]) -> TokenCount:
    """The count of several inputs from each one's count (the app's picker sums the files ticked)."""
    exact = all(c.exact for c in counts)
    estimated = sum(not c.exact for c in counts)
    how = (f"exact: sum of FineWeb's token_count over {len(counts)} file(s)" if exact else
           f"estimate: {estimated} of {len(counts)} file(s) without a complete token_count column")
    return TokenCount(sum(c.tokens for c in counts), exact, sum(c.documents for c in counts), how)


def count_tokens(paths: Sequence[str | Path] | str | Path, text_column: str = "text", *,
                 tokenizer_file: str | Path | None = None) -> TokenCount:
    files = resolve_paths(paths)
    exact_tokens = exact_docs = documents = 0
    to_estimate: list[tuple[Path, pq.ParquetFile]] = []
    for path in files:
        pf = open_parquet(path)
        documents += pf.metadata.num_rows
        counted = _token_count_column(pf, path)
        if counted is not None:
            exact_tokens += counted
            exact_docs += pf.metadata.num_rows
            continue
        check_text_column(pf, path, text_column)
        to_estimate.append((path, pf))
    if not to_estimate:
        return TokenCount(exact_tokens, True, documents,
                          f"exact: sum of FineWeb's token_count over {documents:,} documents in "
                          f"{len(files)} file(s)")
    text_bytes = sum(_text_bytes(pf, path, text_column) for path, pf in to_estimate)
    ratio, source = _bytes_per_token(to_estimate, text_column, tokenizer_file)
    tokens = exact_tokens + round(text_bytes / ratio)
    how = (f"estimate: {text_bytes:,} bytes of text / {ratio:.2f} bytes per token ({source}); "
           "files without a complete token_count column")
    if exact_docs:
        how += f"; plus the exact token_count of {exact_docs:,} documents"
    return TokenCount(tokens, False, documents, how)


MIN_TEXT_BYTES_PER_TOKEN = 3.0
"""For the free-space check without token_count: English web text runs 4-5 bytes per GPT-2 token,
Shakespeare 3.2; assuming 3 over-estimates the tokens a little rather than run out of disk mid-write."""


def tokens_to_write(files: list[tuple[Path, pq.ParquetFile]], text_column: str) -> tuple[int, str]:
    """Tokens prepare will write into train.bin + val.bin together, and how that is known: FineWeb's
    token_count sum plus one <|endoftext|> a document when every file has it (exact, an upper bound as null
    and empty documents are skipped); else the text column's bytes / MIN_TEXT_BYTES_PER_TOKEN (≈, high)."""
    exact = documents = 0
    for path, pf in files:
        counted = _token_count_column(pf, path)
        if counted is None:
            text_bytes = sum(column_text_bytes(pf, text_column) for _, pf in files)
            return (round(text_bytes / MIN_TEXT_BYTES_PER_TOKEN),
                    f"an estimate: {text_bytes:,} bytes of text / {MIN_TEXT_BYTES_PER_TOKEN:g} bytes a token")
        exact += counted
        documents += pf.metadata.num_rows
    return exact + documents, "exact: token_count's sum plus one <|endoftext|> a document"


def _token_count_column(pf: pq.ParquetFile, path: Path) -> int | None:
    """Sum of token_count when the column exists, is an integer and has no nulls; else None."""
    schema = pf.schema_arrow
    if "token_count" not in schema.names or not pa.types.is_integer(schema.field("token_count").type):
        return None
    try:  # the whole int64 column in one call (8 MB a million rows), on the caller's thread, the GIL released
        column = pf.read(columns=["token_count"], use_threads=False).column(0)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(f"{path} could not be read ({err}); re-download it") from None
    if column.null_count:
        return None
    return pc.sum(column).as_py() or 0


def _text_bytes(pf: pq.ParquetFile, path: Path, column: str) -> int:
    total = 0
    for rg in range(pf.metadata.num_row_groups):
        try:
            values = pf.read_row_group(rg, columns=[column]).column(0)
        except (pa.ArrowException, OSError, ValueError) as err:
            raise DataError(f"{path} could not be read at row group {rg} ({err}); re-download it") from None
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        total += pc.sum(pc.binary_length(values)).as_py() or 0
    return total


def _bytes_per_token(files: list[tuple[Path, pq.ParquetFile]], column: str, tokenizer_file) -> tuple[float, str]:
    from trainer.data.tokenizer import encode_document, get_encoding

    try:
        encoding = get_encoding(tokenizer_file)
    except TokenizerError:
        return FALLBACK_BYTES_PER_TOKEN, "measured on Shakespeare; no tokenizer here to sample these files"
    sample_bytes = sample_tokens = 0
    for _, pf in files:
        for rg in range(pf.metadata.num_row_groups):
            texts, _ = to_texts(pf.read_row_group(rg, columns=[column]).column(0).combine_chunks())
            for text in texts:
                if not text:
                    continue
                sample_bytes += len(text.encode("utf-8", errors="replace"))
                sample_tokens += len(encode_document(encoding, text))
                if sample_bytes >= SAMPLE_BYTES:
                    return sample_bytes / sample_tokens, f"measured on a {sample_bytes / 1e6:.1f} MB sample"
    if sample_tokens == 0:
        return FALLBACK_BYTES_PER_TOKEN, "measured on Shakespeare; these files hold no text to sample"
    return sample_bytes / sample_tokens, f"measured on all {sample_bytes / 1e6:.1f} MB"
