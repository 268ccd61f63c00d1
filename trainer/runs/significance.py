"""Is run B really better than run A? Runs grouped by config less the seed, and Welch's t-test between groups.

A group is the runs whose configs are the same once `seed` is left out (`fwtui train --seeds 1337,7,42`
makes one). Per group: how many runs, and the final val loss (nats/token) and bits per byte as mean ± sd
(sample sd, n - 1). Between two groups: the difference of the means (B - A), its 95% interval and the
two-sided p-value of Welch's t-test (unequal variances), both from scipy.stats.ttest_ind(equal_var=False):
t = (mean_B - mean_A) / se, se = sqrt(s_A^2/n_A + s_B^2/n_B), with the Welch–Satterthwaite degrees of
freedom. The speed-running communities' bar is p < 0.01; below it the difference is called significant.
With one run on a side there is no spread to test against: no number is given.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field

SIGNIFICANCE = 0.01
"""p below this is "significant" (the speed-run records' rule)."""
SEED_KEY = "seed"
NO_TEST = "one run a side: no test possible"


@dataclass(frozen=True)
class RunFigures:
    """One run's final figures, as a comparison uses them."""

    name: str
    config: dict
    val_loss: float | None
    val_bpb: float | None = None
    hellaswag: float | None = None
    """The last HellaSwag acc_norm, when scored."""


@dataclass
class SeedGroup:
    """Runs of one config (seed aside); `label` names what sets it apart from the other groups."""

    label: str
    runs: list[RunFigures] = field(default_factory=list)

    def values(self, what: str) -> list[float]:
        """The runs' finite figures `what` ("val_loss", "val_bpb", "hellaswag"); runs without one left out."""
        found = (getattr(r, what) for r in self.runs)
        return [v for v in found if v is not None and math.isfinite(v)]


def config_key(config: dict) -> str:
    """The config less its seed, as one comparable string."""
    return json.dumps({k: v for k, v in config.items() if k != SEED_KEY}, sort_keys=True, default=str)


def group_by_seed(runs: list[RunFigures]) -> list[SeedGroup]:
    """Runs whose configs differ only by seed, together, in the order each group's first run came. A run with
    no config (a log without one) is a group of its own. Labels: the keys whose values differ between the
    groups (`learning_rate=0.001`), else the preset's name, else the first run's name."""
    keyed: dict[str, list[RunFigures]] = {}
    for run in runs:
        keyed.setdefault(config_key(run.config) if run.config else f"\0{run.name}", []).append(run)
    members = list(keyed.values())
    configs = [m[0].config for m in members if m[0].config]  # a run with no config says nothing of keys
    differ = sorted({k for c in configs for k in c if k != SEED_KEY
                     and len({json.dumps(c2.get(k), default=str) for c2 in configs}) > 1})
    groups = []
    for runs_of in members:
        config = runs_of[0].config
        parts = [f"{k}={_value(config.get(k))}" for k in differ if k in config and k not in ("description",)]
        label = " ".join(parts) or str(config.get("name") or runs_of[0].name)
        groups.append(SeedGroup(label, runs_of))
    return groups


def _value(value) -> str:
    """A config value as a label shows it: floats in %g (3e-3 / 10 is 0.0003, not 0.00030000000000000003)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Spread:
    n: int
    mean: float | None
    sd: float | None
    """Sample standard deviation (n - 1); None for fewer than 2 values."""


def spread(values: list[float]) -> Spread:
    if not values:
        return Spread(0, None, None)
    return Spread(len(values), statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class Difference:
    """Group B's mean less group A's, with Welch's test; `note` says why there is no test when there is none."""

    n_a: int
    n_b: int
    diff: float | None
    low: float | None = None
    high: float | None = None
    """The 95% interval of the difference (Welch's t, its degrees of freedom)."""
    t: float | None = None
    df: float | None = None
    p: float | None = None
    note: str = ""

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < SIGNIFICANCE


def welch(a: list[float], b: list[float]) -> Difference:
    """mean(b) - mean(a), its 95% interval and Welch's two-sided p (scipy.stats.ttest_ind, equal_var=False)."""
    if not a or not b:
        return Difference(len(a), len(b), None, note="no final val loss on a side: nothing to compare")
    diff = statistics.fmean(b) - statistics.fmean(a)
    if len(a) < 2 or len(b) < 2:
        return Difference(len(a), len(b), diff, note=NO_TEST)
    if statistics.variance(a) == 0 and statistics.variance(b) == 0:
        return Difference(len(a), len(b), diff, note="no spread on either side: no test possible")
    from scipy import stats

    result = stats.ttest_ind(b, a, equal_var=False)
    interval = result.confidence_interval(0.95)
    return Difference(len(a), len(b), diff, low=float(interval.low), high=float(interval.high),
                      t=float(result.statistic), df=float(result.df), p=float(result.pvalue))
