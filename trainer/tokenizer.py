"""The GPT-2 tokenizer: tiktoken's `r50k_base`, online or from a local `.tiktoken` file.

Where the ranks come from, first match wins: the `tokenizer_file` argument, then `$FWTUI_TOKENIZER_FILE`
(the CLI copies `--tokenizer-file` there), then tiktoken's own download and cache. A local file is checked
against the published sha256 before use, so a truncated or wrong file is refused, never trained on.
Documents are encoded with `encode_ordinary` semantics: a literal "<|endoftext|>" in web text is plain text.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import tiktoken

from trainer.errors import TokenizerError

NAME = "r50k_base"
EOT = 50256
"""`<|endoftext|>`: written after every document, as nanoGPT's prepare.py does."""
VOCAB_SIZE = 50257
R50K_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
ENV_VAR = "FWTUI_TOKENIZER_FILE"

FIX_HINT = (f"pass --tokenizer-file PATH/r50k_base.tiktoken (or set {ENV_VAR}) on an offline machine, "
            "or connect to the internet once so tiktoken can download and cache it")

_lock = threading.Lock()
_cache: dict[str, tiktoken.Encoding] = {}
_file_sha: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class TokenizerInfo:
    """Which ranks a dataset was (or will be) encoded with: goes into meta.json and the cache key."""

    name: str
    sha256: str
    source: str
    """The .tiktoken file's path, or "tiktoken" for tiktoken's download cache."""


def tokenizer_file_setting(tokenizer_file: str | Path | None = None) -> Path | None:
    """The local ranks file in effect (argument, else the environment variable), or None for online."""
    value = tokenizer_file if tokenizer_file else os.environ.get(ENV_VAR, "")
    return Path(value).expanduser() if value else None


def file_sha256(path: Path) -> str:
    """sha256 of a ranks file, memoised by (path, size, mtime) so repeated cache checks stay cheap."""
    try:
        st = path.stat()
    except OSError as err:
        raise TokenizerError(f"tokenizer file {path} cannot be read ({err.strerror}); {FIX_HINT}") from None
    if not path.is_file():
        raise TokenizerError(f"tokenizer file {path} is not a file; {FIX_HINT}")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _file_sha:
        _file_sha[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _file_sha[key]


def tokenizer_info(tokenizer_file: str | Path | None = None) -> TokenizerInfo:
    """Identify the ranks without building the Encoding (a cache check must not cost a tokenizer load)."""
    path = tokenizer_file_setting(tokenizer_file)
    if path is None:
        # tiktoken verifies its download against this same hash, so online and offline data match.
        return TokenizerInfo(NAME, R50K_SHA256, "tiktoken")
    _check_sha(path)
    return TokenizerInfo(NAME, R50K_SHA256, str(path.resolve()))


def _check_sha(path: Path) -> None:
    sha = file_sha256(path)
    if sha != R50K_SHA256:
        raise TokenizerError(
            f"tokenizer file {path} has sha256 {sha[:12]}..., not r50k_base's {R50K_SHA256[:12]}...; "
            f"use the genuine r50k_base.tiktoken (tiktoken's GPT-2 ranks) or unset {ENV_VAR} to download it")


def get_encoding(tokenizer_file: str | Path | None = None) -> tiktoken.Encoding:
    """The GPT-2 BPE Encoding (one per ranks file, built once); TokenizerError naming both fixes if none."""
    path = tokenizer_file_setting(tokenizer_file)
    key = str(path.resolve()) if path is not None else "<tiktoken>"
    with _lock:
        if key in _cache:
            return _cache[key]
        encoding = _load_file(path) if path is not None else _load_online()
        _cache[key] = encoding
        return encoding


def _load_file(path: Path) -> tiktoken.Encoding:
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext.openai_public import r50k_pat_str

    _check_sha(path)
    try:
        ranks = load_tiktoken_bpe(str(path), expected_hash=R50K_SHA256)
    except (OSError, ValueError) as err:
        raise TokenizerError(f"tokenizer file {path} cannot be loaded ({err}); {FIX_HINT}") from None
    return tiktoken.Encoding(name=NAME, pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": EOT}, explicit_n_vocab=VOCAB_SIZE)


def _load_online() -> tiktoken.Encoding:
    try:
        return tiktoken.get_encoding(NAME)
    except Exception as err:  # noqa: BLE001 - requests/urllib/ssl errors all mean "no ranks here"
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise TokenizerError(f"the GPT-2 tokenizer (r50k_base) could not be downloaded ({reason}); "
                             f"{FIX_HINT}") from None


def encode_document(encoding: tiktoken.Encoding, text: str):
    """One document's tokens as a uint32 numpy array, identical to `encoding.encode_ordinary(text)`.

    `encode_to_numpy` with no special tokens allowed or disallowed treats "<|endoftext|>" as text, like
    encode_ordinary, but hands back tiktoken's buffer instead of a Python list of ints (about 1.5x faster
    on 2 threads), and releases the GIL while encoding.
    """
    try:
        return encoding.encode_to_numpy(text, disallowed_special=())
    except UnicodeEncodeError:
        # Lone surrogates cannot be UTF-8: encode_ordinary's own fallback replaces them the same way.
        import numpy as np

        return np.asarray(encoding.encode_ordinary(text), dtype=np.uint32)
