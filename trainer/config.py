"""Run configuration: one validated dataclass with nanoGPT's key names, and the preset loaders.

A preset is a flat TOML file whose keys are nanoGPT's (`n_layer`, `batch_size`, `learning_rate`, ...) plus
three of ours that describe it (`name`, `description`, `vram_tier`), so a user's nanoGPT config maps one to
one. `--preset` takes a preset name (shipped in `presets/`, or the user's own in
`$XDG_CONFIG_HOME/fwtui/presets/`), a path to a TOML file, or a nanoGPT config `.py` read as
`key = literal` lines without executing it. Every bad value fails with one line naming the file, the
field and the value.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import sys
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from trainer.errors import ConfigError
from trainer.recipe import MODEL_SWITCHES, RECIPES
# nanoGPT keys that mean nothing here are read and ignored, so a user's config file loads as it is (with why: there).
from trainer.nanogpt_config import NANOGPT_IGNORED_KEYS, NanogptFile, read_nanogpt_py
from trainer.run_name import run_name_problem

DEVICE_NAMES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")  # what a run (or `fwtui sample --device`) may name

@dataclass(kw_only=True, slots=True)
class RunConfig:
    """Everything one training run needs, with nanoGPT's names and defaults (GPT-2 124M on OpenWebText)."""

    # --- what the preset is (ours, not nanoGPT's) ---
    name: str = "custom"
    """Preset name shown in lists and run directories."""
    description: str = ""
    """One line for the preset list: what card it was written for and where its numbers came from."""
    vram_tier: str = ""
    """The card class the preset targets, as our users wrote it ("12 GB", "24 GB+", "CPU")."""

    # --- model (nanoGPT GPTConfig) ---
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    block_size: int = 1024
    """Context length in tokens."""
    vocab_size: int = 50304
    """GPT-2's 50257 tokens padded up to a multiple of 64, for faster matmuls (as nanoGPT)."""
    dropout: float = 0.0
    bias: bool = False
    """Bias in Linear and LayerNorm layers; False is a little better and faster (nanoGPT)."""

    # --- recipe (trainer/recipe.py): "nanogpt" (the default, nanoGPT-compatible) or "modern". Each switch is
    # its own key; None = the recipe's choice, resolved at once so RUN/config.toml holds what ran. rotary:
    # rotary positions on q, k (no wpe); qk_norm: RMS-normalised q, k per head; relu2_mlp: ReLU² for GELU;
    # rms_norm: RMSNorm for LayerNorm; zero_init_proj: output projections start at 0; untied_head: a head of
    # its own (V x C more weights), zero-initialised; logit_softcap: cap * tanh(logits / cap), 0 = off; muon:
    # Muon for the blocks' 2-D matrices, AdamW at learning_rate for the rest ---
    recipe: str = "nanogpt"
    rotary: bool | None = None
    qk_norm: bool | None = None
    relu2_mlp: bool | None = None
    rms_norm: bool | None = None
    zero_init_proj: bool | None = None
    untied_head: bool | None = None
    logit_softcap: float | None = None
    muon: bool | None = None
    muon_lr: float = 0.02
    """Muon's peak learning rate, scaled by the schedule as learning_rate is."""
    muon_momentum: float = 0.95
    """Muon's (Nesterov) momentum: its one buffer per matrix."""

    # --- batch ---
    batch_size: int = 12
    """Micro-batch size in sequences per forward pass."""
    gradient_accumulation_steps: int = 40
    """Micro-batches per optimizer step; tokens per iteration = batch_size * block_size * this."""

    # --- optimizer and schedule ---
    learning_rate: float = 6e-4
    max_iters: int = 600000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    """Clip the gradient's global norm at this value; 0 disables clipping."""
    decay_lr: bool = True
    warmup_iters: int = 2000
    lr_decay_iters: int | None = None
    """Iteration where cosine decay reaches min_lr; None means max_iters (resolved to a number at once, so
    RUN/config.toml always holds the number); past it the rate stays at min_lr."""
    min_lr: float | None = None
    """Floor of the cosine schedule; None means learning_rate / 10 (Chinchilla)."""

    # --- evaluation, logging, checkpoints ---
    eval_interval: int = 2000
    eval_iters: int = 200
    """Batches averaged for each of the train and val loss estimates."""
    log_interval: int = 1
    always_save_checkpoint: bool = True
    """Save at every evaluation; False saves only when val loss improves (and always on stop)."""
    hellaswag_interval: int = 0  # score HellaSwag every N iterations and at the end; 0 = off (`h` still asks)
    hellaswag_limit: int = 0  # HellaSwag examples scored each time: the file's first N; 0 = all 10,042

    # --- system ---
    device: str = "auto"
    """"auto" (CUDA if present, else CPU), "cuda", "cuda:1", "cpu"."""
    dtype: str = "auto"
    """"auto" (bf16 on CUDA where supported, else fp16; fp32 on CPU), "bfloat16", "float16", "float32"."""
    compile: bool | None = None
    """torch.compile the model; None means on for CUDA, off for CPU (it costs ~40 s a model on CPU)."""
    compile_mode: str = "default"  # torch.compile's mode, or "max-autotune-no-cudagraphs" (trainer.train.compiling)
    seed: int = 1337

    # --- data ---
    val_fraction: float = 0.0005
    """Share of documents held out for validation (nanoGPT's prepare.py uses 0.0005)."""
    text_column: str = "text"

    def __post_init__(self) -> None:
        for name, value in RECIPES.get(self.recipe, RECIPES["nanogpt"]).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.lr_decay_iters is None:
            self.lr_decay_iters = self.max_iters
        if self.min_lr is None:
            self.min_lr = self.learning_rate / 10

    # --- derived values (methods, so they never go stale) ---
    @property
    def tokens_per_iter(self) -> int:
        """Tokens in one optimizer step: batch_size * block_size * gradient_accumulation_steps."""
        return self.batch_size * self.block_size * self.gradient_accumulation_steps

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def model_args(self) -> dict[str, Any]:
        """The keys nanoGPT stores as `model_args` in ckpt.pt, plus the recipe's model switches when any is
        on (a nanoGPT-shaped model's model_args stay exactly nanoGPT's)."""
        args = {
            "n_layer": self.n_layer, "n_head": self.n_head, "n_embd": self.n_embd,
            "block_size": self.block_size, "bias": self.bias, "vocab_size": self.vocab_size, "dropout": self.dropout,
        }
        switches = {name: getattr(self, name) for name in MODEL_SWITCHES}
        if any(switches.values()):
            args.update(switches)
        return args

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def validate(self, source: str = "config") -> "RunConfig":
        """Raise ConfigError, one line naming `source`, the field and the value, for the first bad value."""

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"{source}: {name} = {getattr(self, name)!r}: {why}")

        if why := run_name_problem(self.name):
            raise bad("name", why)
        for name in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "batch_size",
                     "gradient_accumulation_steps", "max_iters", "eval_interval", "eval_iters", "log_interval"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be a positive integer")
        for name in ("warmup_iters", "lr_decay_iters", "hellaswag_interval", "hellaswag_limit"):
            if getattr(self, name) < 0:
                raise bad(name, "must be 0 or more")
        if self.n_embd % self.n_head:
            raise bad("n_embd", f"must be divisible by n_head ({self.n_head}); "
                                f"try {self.n_embd - self.n_embd % self.n_head}")
        if self.vocab_size < 50257:
            raise bad("vocab_size", "must hold GPT-2's 50257 tokens (50304 pads it for speed)")
        for name in ("learning_rate", "min_lr"):
            if not math.isfinite(value := getattr(self, name)) or value < 0:
                raise bad(name, "must be a finite number, 0 or more")
        if self.learning_rate == 0 or self.learning_rate > 1.0:
            raise bad("learning_rate", "must be above 0 and at most 1 (GPT-2 sizes use 1e-4 to 1e-3)")
        if self.min_lr > self.learning_rate:
            raise bad("min_lr", f"must not exceed learning_rate ({self.learning_rate})")
        # A warm-up as long as the run, or lr_decay_iters <= warmup_iters, is no error: lr_at is defined for
        # both (nanoGPT runs them); trainer.train.schedule.schedule_warnings says what such a schedule does.
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay", "must be a finite number, 0 or more")
        for name in ("dropout", "beta1", "beta2"):
            if not (0.0 <= getattr(self, name) < 1.0):  # NaN fails the comparison too
                raise bad(name, "must be at least 0 and below 1")
        if not math.isfinite(self.grad_clip) or self.grad_clip < 0:
            raise bad("grad_clip", "must be a finite number, 0 (off) or more")
        if not (0.0 < self.val_fraction < 0.5):
            raise bad("val_fraction", "must be above 0 and below 0.5")
        if self.recipe not in RECIPES:
            raise bad("recipe", 'must be "nanogpt" or "modern"')
        if not math.isfinite(self.logit_softcap) or self.logit_softcap < 0:
            raise bad("logit_softcap", "must be 0 (off) or a positive number, e.g. 30")
        if self.rotary and self.head_dim % 2:
            raise bad("rotary", f"needs an even head size (n_embd / n_head = {self.head_dim})")
        if not math.isfinite(self.muon_lr) or not (0 < self.muon_lr <= 1.0):
            raise bad("muon_lr", "must be above 0 and at most 1 (speed runs use 0.02 to 0.05)")
        if not (0.0 <= self.muon_momentum < 1.0):
            raise bad("muon_momentum", "must be at least 0 and below 1 (0.95 is usual)")
        if self.compile_mode not in ("default", "max-autotune-no-cudagraphs"):
            raise bad("compile_mode", 'must be "default" or "max-autotune-no-cudagraphs"')
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise bad("dtype", 'must be "auto", "bfloat16", "float16" or "float32"')
        if not DEVICE_NAMES.fullmatch(self.device):
            raise bad("device", 'must be "auto", "cpu", "cuda", "cuda:N" or "mps"')
        if not (0 <= self.seed < 2**63):  # torch.manual_seed takes a signed 64-bit integer
            raise bad("seed", "must be a whole number from 0 to 2**63 - 1, e.g. 1337")
        return self


FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(RunConfig)}
FIELD_NAMES = tuple(FIELD_TYPES)


def _coerce(name: str, value: Any, source: str) -> Any:
    """Check one raw value against the field's declared type; ints are accepted for float fields."""
    kind = FIELD_TYPES[name]
    optional = "None" in kind
    if value is None and optional:
        return None
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {name} = {value!r}: expected true or false")
    if kind.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            return int(value)
        raise ConfigError(f"{source}: {name} = {value!r}: expected a whole number (no quotes)")
    if kind.startswith("float"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{source}: {name} = {value!r}: expected a number (no quotes)")
    if kind.startswith("str"):
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: {name} = {value!r}: expected a string in quotes")
    return value  # pragma: no cover - every field type is handled above


def _unknown_key(name: str, source: str) -> ConfigError:
    near = difflib.get_close_matches(name, FIELD_NAMES, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]!r}?" if near else "see `fwtui presets --keys` for the valid keys"
    return ConfigError(f"{source}: unknown key {name!r}; {hint}")


def config_from_mapping(values: dict[str, Any], source: str, base: RunConfig | None = None,
                        follow: bool = True) -> RunConfig:
    """Build a validated RunConfig from raw key/values; keys not given keep `base`'s (or the defaults).

    `follow=False` (a resume): only the keys given change; lr_decay_iters and min_lr keep the numbers the
    run trained with, so the schedule up to the resume iteration is the one that ran."""
    merged = base.to_dict() if base is not None else {}
    if base is not None and follow:
        # Derived defaults follow their source unless set too: `--set max_iters=100` moves the end of the
        # cosine decay with it, and a new learning_rate moves a min_lr that was learning_rate / 10.
        if "max_iters" in values and "lr_decay_iters" not in values and base.lr_decay_iters == base.max_iters:
            merged["lr_decay_iters"] = None
        if "recipe" in values:  # switches that were the old recipe's choice follow the new recipe
            for name, value in RECIPES.get(base.recipe, {}).items():
                if name not in values and merged[name] == value:
                    merged[name] = None
        if ("learning_rate" in values and "min_lr" not in values
                and math.isclose(base.min_lr, base.learning_rate / 10)):
            merged["min_lr"] = None
    for name, value in values.items():
        if name in NANOGPT_IGNORED_KEYS:
            continue
        if name not in FIELD_TYPES:
            raise _unknown_key(name, source)
        merged[name] = _coerce(name, value, source)
    return RunConfig(**merged).validate(source)


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from `--set`: the value is read as a TOML value (1e-4, true, "x"), else as a bare string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, for example --set batch_size=8")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as cpu or bfloat16
    return key, value


def apply_overrides(config: RunConfig, overrides: list[str] | dict[str, Any], follow: bool = True) -> RunConfig:
    """Apply `--set key=value` strings (or a dict) on top of a config; errors name the flag. `follow`: as in
    config_from_mapping (False on --resume: nothing changes but what is set)."""
    values = dict(overrides) if isinstance(overrides, dict) else dict(parse_override(item) for item in overrides)
    if not values:
        return config
    return config_from_mapping(values, "--set", base=config, follow=follow)


# --- preset files ---------------------------------------------------------------------------------------

def shipped_preset_dir() -> Path:
    import presets

    return Path(presets.__file__).parent


def user_preset_dir() -> Path:
    """$FWTUI_CONFIG_DIR/presets, else $XDG_CONFIG_HOME/fwtui/presets, else ~/.config/fwtui/presets."""
    if os.environ.get("FWTUI_CONFIG_DIR"):
        return Path(os.environ["FWTUI_CONFIG_DIR"]) / "presets"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fwtui" / "presets"


def preset_paths() -> dict[str, Path]:
    """Every preset name to its file (not references.toml: the charts' lines); a user preset shadows a shipped one."""
    found: dict[str, Path] = {}
    for directory in (shipped_preset_dir(), user_preset_dir()):
        if directory.is_dir():
            found.update({p.stem: p for p in sorted(directory.glob("*.toml")) if p.name != "references.toml"})
    return found


def read_config_file(path: Path) -> dict[str, Any]:
    """The key/values of a TOML or nanoGPT `.py` file; nanoGPT keys fwtui does not use are named on stderr."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    if path.suffix == ".py":
        found = read_nanogpt_py(path)
        values = found.values
    else:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
        found = NanogptFile(ignored={k: v for k, v in values.items() if k in NANOGPT_IGNORED_KEYS})
    _note_once(found.ignored_line(path))
    return values


_noted: set[str] = set()


def _note_once(line: str | None) -> None:
    """A note about a config file on stderr, once a process (the app loads a preset up to three times)."""
    if line and line not in _noted:
        _noted.add(line)
        print(line, file=sys.stderr)


def load_preset(name_or_path: str | Path) -> RunConfig:
    """A preset by name, or a TOML / nanoGPT `.py` file by path, as a validated RunConfig."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text.endswith((".toml", ".py")) or os.sep in text:
        values = read_config_file(path)
        values.setdefault("name", path.stem)
        return config_from_mapping(values, str(path))
    paths = preset_paths()
    if text not in paths:
        near = difflib.get_close_matches(text, list(paths), n=1, cutoff=0.5)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise ConfigError(f"unknown preset {text!r}; {hint}`fwtui presets` lists them, or pass a .toml path")
    values = read_config_file(paths[text])
    values.setdefault("name", text)
    return config_from_mapping(values, str(paths[text]))


def all_presets() -> list[RunConfig]:
    """Every preset that loads, shipped and user's, in name order. A broken user file raises its error."""
    return [load_preset(name) for name in sorted(preset_paths())]


def config_to_toml(config: RunConfig) -> str:
    """The resolved config as TOML (RUN/config.toml): every key, exactly what ran."""
    lines = []
    for name, value in config.to_dict().items():
        if value is None:
            continue  # TOML has no null; a None field (compile = auto) is simply absent
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        elif isinstance(value, float):
            text = repr(value)
        else:
            text = str(value)
        lines.append(f"{name} = {text}")
    return "\n".join(lines) + "\n"


__all__ = ["RunConfig", "FIELD_NAMES", "apply_overrides", "parse_override", "load_preset", "all_presets",
           "preset_paths", "config_from_mapping", "config_to_toml", "user_preset_dir"]
