"""A prepared dataset on disk: `train.bin`, `val.bin` (flat uint16 GPT-2 tokens, nanoGPT's format) and
`meta.json`, which is written last and so marks the directory complete.

`open_prepared(dir)` checks meta.json and that each .bin holds exactly tokens x 2 bytes, so a truncated
or half-written directory is refused with one line instead of training on garbage.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import DataError
from trainer.own_files import fresh_file

FORMAT = "fwtui-prepared"
FORMAT_VERSION = 1
TOKEN_BYTES = 2
"""uint16: GPT-2's 50257 ids fit, as nanoGPT stores them."""
META_NAME = "meta.json"
TRAIN_NAME = "train.bin"
VAL_NAME = "val.bin"


@dataclass(frozen=True)
class PreparedData:
    """A complete prepared dataset directory."""

    dir: Path
    train_tokens: int
    val_tokens: int
    documents: int
    """Documents written (train + val); skipped ones are counted in meta["skipped"]."""
    meta: dict
    cached: bool
    """True when nothing was tokenized now: an earlier prepare of the same inputs and settings was reused."""

    @property
    def train_path(self) -> Path:
        return self.dir / TRAIN_NAME

    @property
    def val_path(self) -> Path:
        return self.dir / VAL_NAME


def cache_root() -> Path:
    """Where prepared datasets live when no output directory is given."""
    if os.environ.get("FWTUI_CACHE_DIR"):
        return Path(os.environ["FWTUI_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fwtui" / "data"


def is_prepared_dir(path: Path) -> bool:
    """A directory that looks like a prepared dataset (whether complete is for open_prepared to say)."""
    return path.is_dir() and (path / META_NAME).is_file() and (path / TRAIN_NAME).exists()


def read_meta(directory: Path) -> dict[str, Any]:
    path = Path(directory) / META_NAME
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{directory} is not a prepared dataset (no {META_NAME}: missing or interrupted); "
                        f"run `fwtui prepare PARQUET --out {directory}` again") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path} is unreadable ({err}); delete {directory} and prepare it again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path} is not an fwtui meta.json; delete {directory} and prepare it again")
    if meta.get("version") != FORMAT_VERSION:
        raise DataError(f"{path} has version {meta.get('version')!r}, this fwtui reads {FORMAT_VERSION}; "
                        f"delete {directory} and prepare it again")
    return meta


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    """Write meta.json atomically (temporary name, fsync, rename): once it exists the dataset is complete."""
    path = Path(directory) / META_NAME
    tmp = path.with_name(f"{META_NAME}.tmp-{os.getpid()}")
    with os.fdopen(fresh_file(tmp, mode=0o644), "w", encoding="utf-8") as f:  # never through a planted symlink
        json.dump({"format": FORMAT, "version": FORMAT_VERSION, **meta}, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def open_prepared(directory: str | Path, *, cached: bool = True) -> PreparedData:
    """The prepared dataset in `directory`, after checking meta.json against the .bin sizes."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DataError(f"prepared data directory {directory} does not exist; "
                        "run `fwtui prepare PARQUET --out DIR` first")
    meta = read_meta(directory)
    try:
        splits = meta["splits"]
        counts = {name: (int(splits[name]["tokens"]), int(splits[name]["documents"])) for name in ("train", "val")}
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{directory / META_NAME} lacks split token counts; delete {directory} and prepare it "
                        "again") from None
    for name, filename in (("train", TRAIN_NAME), ("val", VAL_NAME)):
        path = directory / filename
        expected = counts[name][0] * TOKEN_BYTES
        try:
            size = path.stat().st_size
        except OSError:
            raise DataError(f"{path} is missing although {META_NAME} is there; delete {directory} and prepare "
                            "it again") from None
        if size != expected:
            raise DataError(f"{path} holds {size:,} bytes but {META_NAME} says {counts[name][0]:,} tokens "
                            f"({expected:,} bytes): truncated or replaced; delete {directory} and prepare it again")
    return PreparedData(dir=directory, train_tokens=counts["train"][0], val_tokens=counts["val"][0],
                        documents=counts["train"][1] + counts["val"][1], meta=meta, cached=cached)


def check_token_ids(windows, path: str | Path):
    """`windows` (uint16 token windows read from `path`) as they are, or DataError when one holds an id past
    GPT-2's vocabulary: a damaged or foreign .bin would otherwise end in an IndexError on the CPU or a device
    assert on CUDA (which poisons the CUDA context: no checkpoint can be written after it). A max over the
    (B, T + 1) batch: microseconds beside a step."""
    from trainer.data.tokenizer import VOCAB_SIZE

    if windows.size and int(windows.max()) >= VOCAB_SIZE:
        raise DataError(f"{path} holds token id {int(windows.max()):,}, past GPT-2's {VOCAB_SIZE:,}: not GPT-2 "
                        f"tokens (a damaged or foreign file); delete {Path(path).parent} and prepare it again")
    return windows

