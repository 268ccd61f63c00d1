"""The GPT-2 tokenizer: tiktoken's `r50k_base`, from the ranks file shipped in trainer/data/assets/.

Where the ranks come from, first match wins: the `tokenizer_file` argument, then `$FWTUI_TOKENIZER_FILE`
(the CLI copies `--tokenizer-file` there), then the copy shipped with the package (SHIPPED_FILE). Nothing is
ever downloaded, so a machine without internet needs no setting. Every file is checked against the
published sha256 before use, so a truncated or wrong file is refused, never trained on.
Documents are encoded with `encode_ordinary` semantics: a literal "<|endoftext|>" in web text is plain text.
"""

from __future__ import annotations

import base64
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
"""The hash tiktoken itself expects of r50k_base.tiktoken (tiktoken_ext/openai_public.py)."""
ENV_VAR = "FWTUI_TOKENIZER_FILE"
SHIPPED_FILE = Path(__file__).resolve().parent / "assets" / "r50k_base.tiktoken"
"""835,554 bytes, with its licences beside it (trainer/data/assets/LICENSE)."""

FIX_HINT = (f"pass --tokenizer-file PATH/r50k_base.tiktoken (or set {ENV_VAR}) to a genuine copy, or unset "
            f"{ENV_VAR} to use the one shipped with fwtui")
SHIPPED_HINT = (f"reinstall fwtui (`pip install --force-reinstall fwtui`), or pass --tokenizer-file "
                f"PATH/r50k_base.tiktoken (or set {ENV_VAR}) to a genuine copy")

_lock = threading.Lock()
_cache: dict[str, tiktoken.Encoding] = {}
_file_sha: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class TokenizerInfo:
    """Which ranks a dataset was (or will be) encoded with: goes into meta.json and the cache key."""

    name: str
    sha256: str
    source: str
    """The .tiktoken file's path (the shipped one unless overridden)."""


def tokenizer_file_setting(tokenizer_file: str | Path | None = None) -> Path:
    """The ranks file in effect: the argument, else the environment variable, else the shipped copy."""
    value = tokenizer_file if tokenizer_file else os.environ.get(ENV_VAR, "")
    return Path(value).expanduser() if value else SHIPPED_FILE


def _hint(path: Path) -> str:
    return SHIPPED_HINT if path == SHIPPED_FILE else FIX_HINT


def file_sha256(path: Path) -> str:
    """sha256 of a ranks file, memoised by (path, size, mtime) so repeated cache checks stay cheap."""
    try:
        st = path.stat()
    except OSError as err:
        raise TokenizerError(f"tokenizer file {path} cannot be read ({err.strerror}); {_hint(path)}") from None
    if not path.is_file():
        raise TokenizerError(f"tokenizer file {path} is not a file; {_hint(path)}")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _file_sha:
        _file_sha[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _file_sha[key]


def tokenizer_info(tokenizer_file: str | Path | None = None) -> TokenizerInfo:
    """Identify the ranks without building the Encoding (a cache check must not cost a tokenizer load)."""
    path = tokenizer_file_setting(tokenizer_file)
    _check_sha(path)
    return TokenizerInfo(NAME, R50K_SHA256, str(path.resolve()))


def _check_sha(path: Path) -> None:
    sha = file_sha256(path)
    if sha != R50K_SHA256:
        raise TokenizerError(f"tokenizer file {path} has sha256 {sha[:12]}..., not r50k_base's {R50K_SHA256[:12]}..."
                             f" (truncated or another file); {_hint(path)}")


def get_encoding(tokenizer_file: str | Path | None = None) -> tiktoken.Encoding:
    """The GPT-2 BPE Encoding (one per ranks file, built once); TokenizerError naming the fix if refused."""
    path = tokenizer_file_setting(tokenizer_file)
    key = str(path.resolve())
    with _lock:
        if key in _cache:
            return _cache[key]
        encoding = _load_file(path)
        _cache[key] = encoding
        return encoding


def _load_file(path: Path) -> tiktoken.Encoding:
    from tiktoken_ext.openai_public import r50k_pat_str

    _check_sha(path)
    try:
        contents = path.read_bytes()
    except OSError as err:
        raise TokenizerError(f"tokenizer file {path} cannot be read ({err.strerror}); {_hint(path)}") from None
    if hashlib.sha256(contents).hexdigest() != R50K_SHA256:  # replaced since the check above
        raise TokenizerError(f"tokenizer file {path} changed while it was read; {_hint(path)}")
    return tiktoken.Encoding(name=NAME, pat_str=r50k_pat_str, mergeable_ranks=parse_ranks(contents),
                             special_tokens={"<|endoftext|>": EOT}, explicit_n_vocab=VOCAB_SIZE)


def parse_ranks(contents: bytes) -> dict[bytes, int]:
    """A .tiktoken file's lines, `base64(token bytes) rank`, as {token bytes: rank}.

    Parsed here rather than by tiktoken.load.load_tiktoken_bpe, which copies even a local file into its
    download cache (a temp directory); the bytes were already read and hash-checked.
    """
    ranks = {}
    for line in contents.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


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
