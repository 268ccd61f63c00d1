"""Reference lines for the charts, read from presets/references.toml (data, not code): a level to reach
(GPT-2 124M's HellaSwag acc_norm, chance, the speed-run's val loss 3.28) or a loss curve someone reported
for a preset. Each names its source; the charts draw them when the `r` key turns them on.

A curve is given by iteration, with its tokens per iteration and (for the FLOPs axis) the training FLOPs
per token of the model it came from, so it can be drawn on every x axis but wall time.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

from trainer.config import shipped_preset_dir
from trainer.errors import ConfigError

REFERENCES_FILE = "references.toml"
CHARTS = ("loss", "hellaswag")


@dataclass(frozen=True)
class ReferenceLine:
    chart: str
    """"loss" or "hellaswag"."""
    value: float
    label: str
    source: str


@dataclass(frozen=True)
class ReferenceCurve:
    chart: str
    label: str
    source: str
    presets: tuple[str, ...]
    """The presets it is drawn for (the runs its notes describe)."""
    iters: tuple[float, ...]
    train: tuple[float, ...]
    val: tuple[float, ...]
    tokens_per_iter: int
    flops_per_token: float | None = None

    def xs(self, axis: str) -> list[float] | None:
        """Its iterations on `axis` ("iter", "tokens", "flops"); None where it cannot be drawn (wall time)."""
        if axis == "iter":
            return list(self.iters)
        if axis == "tokens":
            return [i * self.tokens_per_iter for i in self.iters]
        if axis == "flops" and self.flops_per_token:
            return [i * self.tokens_per_iter * self.flops_per_token for i in self.iters]
        return None


@dataclass(frozen=True)
class References:
    lines: tuple[ReferenceLine, ...] = ()
    curves: tuple[ReferenceCurve, ...] = ()

    def lines_for(self, chart: str) -> list[ReferenceLine]:
        return [line for line in self.lines if line.chart == chart]

    def curves_for(self, chart: str, preset: str | None) -> list[ReferenceCurve]:
        return [c for c in self.curves if c.chart == chart and preset in c.presets]


def _field(entry: dict, key: str, kind, where: str):
    value = entry.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}: `{key}` missing or not {getattr(kind, '__name__', 'a number')}; fix the entry")
    return value


def _chart(entry: dict, where: str) -> str:
    chart = _field(entry, "chart", str, where)
    if chart not in CHARTS:
        raise ConfigError(f"{where}: chart {chart!r} is not one of {', '.join(CHARTS)}; fix the entry")
    return chart


def parse_references(text: str, path: str) -> References:
    """The file's lines and curves; ConfigError with one line naming the entry and the fix."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err}); fix or remove the file") from None
    lines, curves = [], []
    for i, entry in enumerate(data.get("line", [])):
        where = f"{path} line #{i + 1}"
        lines.append(ReferenceLine(_chart(entry, where), float(_field(entry, "value", (int, float), where)),
                                   _field(entry, "label", str, where), _field(entry, "source", str, where)))
    for i, entry in enumerate(data.get("curve", [])):
        where = f"{path} curve #{i + 1}"
        iters = [float(x) for x in _field(entry, "iters", list, where)]
        train = [float(x) for x in _field(entry, "train", list, where)]
        val = [float(x) for x in _field(entry, "val", list, where)]
        if not (len(iters) == len(train) == len(val)):
            raise ConfigError(f"{where}: iters, train and val differ in length; give one loss of each per iteration")
        flops = entry.get("flops_per_token")
        curves.append(ReferenceCurve(
            _chart(entry, where), _field(entry, "label", str, where), _field(entry, "source", str, where),
            tuple(_field(entry, "presets", list, where)), tuple(iters), tuple(train), tuple(val),
            int(_field(entry, "tokens_per_iter", int, where)), float(flops) if flops else None))
    return References(tuple(lines), tuple(curves))


@functools.lru_cache(maxsize=4)
def load_references(path: str | None = None) -> References:
    """presets/references.toml (or `path`), read once; no file: no references."""
    file = Path(path) if path else shipped_preset_dir() / REFERENCES_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return References()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file}: cannot be read ({err}); fix or remove the file") from None
    return parse_references(text, str(file))
