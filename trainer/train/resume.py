"""What ties a checkpoint to its run: the dataset's identity, RUN/config.toml as a resume reads it, and the
checks before a resume.

A resume must continue the same model on the same tokens; anything else would silently train a
different run under the old name. Each check fails with one line naming the value and the fix.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from pathlib import Path
from typing import Any, Protocol

from trainer.config import RunConfig, config_from_mapping
from trainer.recipe import MODEL_SWITCHES, RECIPES
from trainer.errors import CheckpointError, ConfigError

SHAPE_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "bias")
SAMPLE_BYTES = 1 << 20  # hashed from each end of train.bin: enough to tell datasets apart, cheap to read
CONFIG_FILE = "config.toml"
DATA_KEY = "dataset"
"""config.toml's key for the prepared directory the run trains on (nanoGPT's name for its data; a preset
loader ignores it, so config.toml still loads as a preset for a new run)."""


def read_run_config(run_dir: str | Path) -> tuple[RunConfig, str | None]:
    """RUN/config.toml as (the config that ran, the prepared data directory or None when not recorded).
    No torch here: the app checks a resume's --set with it before anything heavy is imported."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing; pass --preset with the run's preset") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: not readable ({err}); pass --preset with the run's preset") from None
    data_dir = values.pop(DATA_KEY, None)
    return config_from_mapping(values, str(path)), data_dir if isinstance(data_dir, str) else None


def config_from_checkpoint(run_dir: str | Path) -> tuple[RunConfig, str | None]:
    """The config a run trained with and its prepared data directory, read from its checkpoint (ckpt.pt, else
    ckpt.prev.pt), which carries both: for a run whose config.toml is lost. ConfigError when neither holds a
    config fwtui can read (a nanoGPT checkpoint: its own keys)."""
    from trainer.train.checkpoint import CKPT_FILE, PREV_FILE, peek_checkpoint  # torch: on this path only

    run_dir = Path(run_dir)
    why = "no checkpoint there"
    for name in (CKPT_FILE, PREV_FILE):
        path = run_dir / name
        data = peek_checkpoint(path) if path.is_file() else None
        if data is None:
            why = f"{name} is unreadable" if path.is_file() else why
            continue
        if not isinstance(data.get("config"), dict):
            why = f"{name} holds no config"
            continue
        try:
            config = config_from_mapping(dict(data["config"]), f"{path} (its config)")
        except ConfigError as err:
            why = str(err)
            continue
        dataset = data.get("dataset")
        data_dir = dataset.get("dir") if isinstance(dataset, dict) else None
        return config, data_dir if isinstance(data_dir, str) else None
    raise ConfigError(f"{run_dir / CONFIG_FILE} is missing and the run's config cannot be read from its checkpoint "
                      f"({why}); pass --preset with the run's preset (and --set what it changed) and --data")


class PreparedLike(Protocol):
    """What the trainer needs of trainer.data.dataset.PreparedData."""

    dir: Path
    train_tokens: int
    val_tokens: int
    meta: dict

    @property
    def train_path(self) -> Path: ...

    @property
    def val_path(self) -> Path: ...


def _edges_sha256(path: Path) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(SAMPLE_BYTES))
        if size > 2 * SAMPLE_BYTES:
            f.seek(size - SAMPLE_BYTES)
            h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()[:16]


def dataset_identity(data: PreparedLike) -> dict[str, Any]:
    """Token counts, tokenizer and a content hash of train.bin's ends (plain values for the checkpoint)."""
    meta = data.meta or {}
    tokenizer = meta.get("tokenizer", "r50k_base")
    if isinstance(tokenizer, dict):  # trainer.data.ingest writes {"name", "sha256", "eot"}
        tokenizer = f"{tokenizer.get('name', '?')}:{str(tokenizer.get('sha256', ''))[:16]}"
    return {
        "dir": str(data.dir),
        "train_tokens": int(data.train_tokens),
        "val_tokens": int(data.val_tokens),
        "tokenizer": str(tokenizer),
        "train_sha256_edges": _edges_sha256(Path(data.train_path)),
        "sources": [str(s.get("path")) for s in meta.get("sources", []) if isinstance(s, dict)],
    }


def check_resume(ckpt: dict, config: RunConfig, identity: dict[str, Any], where: str | Path) -> None:
    """Raise CheckpointError unless `ckpt` can continue with this config and data."""
    for key in ("model", "optimizer", "model_args", "iter_num"):
        if key not in ckpt:
            raise CheckpointError(f"{where}: checkpoint has no {key!r}; it cannot be resumed (start a new --out)")
    args = ckpt["model_args"]
    for key in SHAPE_KEYS:
        if key in args and args[key] != getattr(config, key):
            raise CheckpointError(
                f"{where}: the checkpoint's model has {key} = {args[key]!r} but the config says "
                f"{getattr(config, key)!r}; resume with the run's own shape (drop that --set) or use a new --out")
    # The recipe's switches shape the model (model_args) and the optimizer's state (muon); nanoGPT's and older
    # checkpoints lack them: all off.
    ran = {**RECIPES["nanogpt"], **(ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}),
           **{k: v for k, v in args.items() if k in MODEL_SWITCHES}}
    for key in (*MODEL_SWITCHES, "muon"):
        if ran.get(key) != getattr(config, key):
            raise CheckpointError(
                f"{where}: the run trained with {key} = {ran.get(key)!r} but the config says {getattr(config, key)!r};"
                f" resume with the run's own recipe (drop that --set) or use a new --out")
    iter_num = int(ckpt["iter_num"])
    if config.max_iters <= iter_num:
        raise CheckpointError(
            f"{where}: the checkpoint is at iter {iter_num} and max_iters is {config.max_iters}: nothing left "
            f"to train; raise it, e.g. --set max_iters={iter_num * 2}")
    saved = ckpt.get("dataset")
    if saved:
        for key in ("train_tokens", "val_tokens", "tokenizer", "train_sha256_edges"):
            if key in saved and saved[key] != identity.get(key) and saved.get("dir") == identity.get("dir"):
                sources = ", ".join(saved.get("sources") or []) or "see the run's events.jsonl"
                raise CheckpointError(
                    f"{where}: {saved['dir']} changed since this run trained on it ({key} {saved[key]!r}, now "
                    f"{identity.get(key)!r}): it was prepared again from other data; prepare the run's own data "
                    f"({sources}) into a new folder and pass it with --data, or use a new --out")
            if key in saved and saved[key] != identity.get(key):
                raise CheckpointError(
                    f"{where}: the run trained on other data ({key} {saved[key]!r}, now {identity.get(key)!r}); "
                    f"pass the run's own --data ({saved.get('dir', 'see config.toml')}) or use a new --out")


def best_val_loss_of(ckpt: dict) -> float:
    value = ckpt.get("best_val_loss", math.inf)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.inf
