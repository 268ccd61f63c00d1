"""HellaSwag's validation file: where it comes from, checking it, and reading its examples.

Where the file comes from, first match wins: the `path` argument (`--hellaswag-file`), then
`$FWTUI_HELLASWAG_FILE`, then fwtui's cache ($XDG_CACHE_HOME/fwtui/hellaswag/, else ~/.cache/fwtui/hellaswag/),
where a one-time download from the authors' public address put it. A download is written under a temporary
name, hashed as it arrives and renamed into place only when its sha256 is the published one, so the cache
holds the genuine file or nothing. A file the user names is read as it is (a subset is fine) and said to be
the published one only when its hash matches.

Each line is one JSON object with (among others) `ctx` (the context), `endings` (4 strings) and `label`
(the index of the true ending, 0-3). A line that is not such an object (a damaged or truncated file) is
refused with its line number. torch is not needed here.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from trainer.errors import DataError

URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
"""The validation split as its authors publish it (rowanz/hellaswag, data/)."""
SHA256 = "dc1be2fa1bef56aab8e92a5be597a617e363b09239fa66822939d7fb7a8da4ec"
"""sha256 of the published file: 10,042 lines, 12,246,618 bytes (REFERENCE.md section 11)."""
EXAMPLES = 10_042
FILE_NAME = "hellaswag_val.jsonl"
ENV_VAR = "FWTUI_HELLASWAG_FILE"
DOWNLOAD_TIMEOUT_S = 30.0

CHANCE = 0.25
GPT2_124M_ACC = 0.2859
GPT2_124M_ACC_NORM = 0.2955
"""OpenAI's GPT-2 124M weights scored completion style (REFERENCE.md section 11): what a result is held to."""


@dataclass(frozen=True, slots=True)
class Example:
    """One HellaSwag question: a context and 4 candidate endings, `label` the true one."""

    line: int
    """1-based line number in the file (how errors and per-example results name it)."""
    ctx: str
    endings: tuple[str, str, str, str]
    label: int


@dataclass(frozen=True, slots=True)
class HellaSwagFile:
    path: Path
    sha256: str
    examples: list[Example]

    @property
    def published(self) -> bool:
        """True when this is byte for byte the authors' validation file."""
        return self.sha256 == SHA256


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/fwtui/hellaswag, else ~/.cache/fwtui/hellaswag."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fwtui" / "hellaswag"


def cached_path() -> Path:
    return cache_dir() / FILE_NAME


def fix_hint() -> str:
    return (f"pass --hellaswag-file PATH/{FILE_NAME} (or set {ENV_VAR}), or copy {FILE_NAME} from {URL} "
            f"to {cached_path()}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_url(url: str, dest, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Copy the bytes at `url` into the open binary file `dest` (the one place that touches the network)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a fixed https address
        for chunk in iter(lambda: response.read(1 << 16), b""):
            dest.write(chunk)


def download(on_note: Callable[[str], None] | None = None) -> Path:
    """Download the published file into the cache once; returns its path. DataError when offline or wrong."""
    target = cached_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{FILE_NAME}.{os.getpid()}.part")
    if on_note:
        on_note(f"downloading HellaSwag's validation file (12 MB, once) from {URL} to {target}")
    try:
        with open(partial, "wb") as f:
            fetch_url(URL, f)
        sha = file_sha256(partial)
        if sha != SHA256:
            raise DataError(f"the HellaSwag file downloaded from {URL} has sha256 {sha[:12]}..., not the "
                            f"published {SHA256[:12]}... (an interrupted or altered download); nothing was "
                            f"cached; try again, or {fix_hint()}")
        os.replace(partial, target)  # whole and checked, or not there at all
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - offline, refused, a timeout: all one line with the fixes
        reason = getattr(err, "reason", None) or err
        raise DataError(f"cannot download HellaSwag's validation file ({type(err).__name__}: {reason}); "
                        f"{fix_hint()}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def locate(path: str | Path | None = None, *, allow_download: bool = True,
           on_note: Callable[[str], None] | None = None) -> Path:
    """The file in effect: the argument, else $FWTUI_HELLASWAG_FILE, else the cache (downloaded if absent)."""
    given = str(path) if path else os.environ.get(ENV_VAR, "")
    if given:
        chosen = Path(given).expanduser()
        if not chosen.is_file():
            source = "--hellaswag-file" if path else ENV_VAR
            raise DataError(f"{source} {chosen}: no such file; give the path of {FILE_NAME} "
                            f"(the validation split, from {URL})")
        return chosen
    cached = cached_path()
    if cached.is_file():
        if file_sha256(cached) == SHA256:
            return cached
        raise DataError(f"{cached} has the wrong sha256 (damaged or another file); delete it so fwtui "
                        f"downloads it again, or {fix_hint()}")
    if not allow_download:
        raise DataError(f"no HellaSwag file: {fix_hint()}")
    return download(on_note)


def _parse_line(text: str, line: int, path: Path) -> Example:
    where = f"{path} line {line}"
    try:
        item = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: not valid JSON ({err.msg}); the file is damaged or truncated; "
                        f"{fix_hint()}") from None
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected a JSON object with ctx, endings and label; {fix_hint()}")
    ctx, endings, label = item.get("ctx"), item.get("endings"), item.get("label")
    if not isinstance(ctx, str) or not ctx:
        raise DataError(f"{where}: 'ctx' must be a non-empty string; {fix_hint()}")
    if (not isinstance(endings, list) or len(endings) != 4
            or not all(isinstance(e, str) and e for e in endings)):
        raise DataError(f"{where}: 'endings' must be a list of 4 non-empty strings; {fix_hint()}")
    if isinstance(label, str) and label.isdigit():  # some re-publications store the label as "3"
        label = int(label)
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label <= 3:
        raise DataError(f"{where}: 'label' must be 0, 1, 2 or 3, not {label!r}; {fix_hint()}")
    return Example(line=line, ctx=ctx, endings=tuple(endings), label=label)


def read_examples(path: Path) -> list[Example]:
    """Every example in the file, in order; DataError naming the first bad line. Blank lines are skipped."""
    examples = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, text in enumerate(f, start=1):
                if text.strip():
                    examples.append(_parse_line(text, number, path))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason}); {fix_hint()}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}); {fix_hint()}") from None
    if not examples:
        raise DataError(f"{path}: holds no examples; {fix_hint()}")
    return examples


def load(path: str | Path | None = None, *, limit: int | None = None, allow_download: bool = True,
         on_note: Callable[[str], None] | None = None) -> HellaSwagFile:
    """The file (see `locate`), checked and read; `limit` keeps the first N examples (all lines are checked)."""
    if limit is not None and limit < 1:
        raise DataError(f"--limit {limit}: must be 1 or more (the file has {EXAMPLES:,} examples)")
    chosen = locate(path, allow_download=allow_download, on_note=on_note)
    examples = read_examples(chosen)
    return HellaSwagFile(path=chosen, sha256=file_sha256(chosen),
                         examples=examples[:limit] if limit else examples)


def tokenize(example: Example, encoding) -> tuple[list[int], list[list[int]]]:
    """(context tokens, the 4 endings' tokens): `ctx`, then `" " + ending`, as the GPT-2 paper scores them."""
    return (encoding.encode_ordinary(example.ctx),
            [encoding.encode_ordinary(" " + ending) for ending in example.endings])
