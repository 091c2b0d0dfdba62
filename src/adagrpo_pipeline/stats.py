"""Paired statistics between two models on the same test users (docs/architecture.md,
"Evaluation protocol"). Kedro-free.

Every difference is paired over users: per user, each model's outcome (e.g. hit@10) averaged
over its seeds, then the difference; a bootstrap over users (scipy's `stats.bootstrap`,
percentile intervals) gives its confidence interval. Averaging over seeds per user before
resampling users is the same as averaging the seeds inside every resample. The minimum
detectable effect is the smallest true mean difference a two-sided test at `alpha` finds with
probability `power`, given the spread of the per-user differences: (z_{1-α/2} + z_power) ·
sd(d) / √n.

The default confidence level, test size and power live here (`LEVEL`, `ALPHA`, `POWER`); every
report writes the level it was given (`percent`), never a literal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95  # confidence level of every interval unless a caller sets its own
ALPHA = 0.05  # two-sided test size of the minimum detectable effect
POWER = 0.8  # its power


def percent(share: float) -> str:
    """A level or power as report text: 0.8 -> '80%'."""
    return f"{round(share * 100)}%"


@dataclass(frozen=True)
class PairedDifference:
    """mean(a − b) over users with its bootstrap CI, and what the data could have resolved."""

    delta: float
    ci_low: float
    ci_high: float
    mde: float  # minimum detectable effect of this comparison (same users, same spread)
    users: int
    level: float

    @property
    def resolved(self) -> bool:
        """The CI excludes 0: a difference, in the direction of `delta`."""
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def call(self) -> str:
        """'above' / 'below' where the CI excludes 0, else 'not resolved'."""
        if not self.resolved:
            return "not resolved"
        return "above" if self.delta > 0 else "below"

    def to_json(self) -> dict[str, float | int | bool | str]:
        return {**asdict(self), "resolved": self.resolved, "call": self.call}

    def text(self) -> str:
        return f"{self.delta:+.4f} [{self.ci_low:+.4f}, {self.ci_high:+.4f}] ({percent(self.level)} CI, {self.users} users)"


def per_user(outcomes: np.ndarray) -> np.ndarray:
    """(users,) or (seeds, users) outcomes -> (users,) means over seeds."""
    x = np.asarray(outcomes, dtype=np.float64)
    if x.ndim == 1:
        return x
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"outcomes must be (users,) or (seeds, users) with at least one seed, got shape {x.shape}")
    return x.mean(axis=0)


def minimum_detectable_effect(differences: np.ndarray, alpha: float = ALPHA, power: float = POWER) -> float:
    """(z_{1-α/2} + z_power) · sd / √n of per-user paired differences."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2:
        return float("nan")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z * d.std(ddof=1) / np.sqrt(len(d)))


def paired_difference(a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0, level: float = LEVEL,
                      alpha: float = ALPHA, power: float = POWER) -> PairedDifference:
    """A − B over the same users: `a` and `b` are (users,) or (seeds, users) outcomes in the
    same user order (seed counts may differ). Percentile bootstrap over users."""
    a_u, b_u = per_user(a), per_user(b)
    if a_u.shape != b_u.shape:
        raise ValueError(f"paired outcomes must cover the same users: {a_u.shape[0]} vs {b_u.shape[0]}")
    if len(a_u) < 2:
        raise ValueError("a paired bootstrap needs at least two users")
    d = a_u - b_u
    mean, low, high = _percentile_ci(d, resamples, seed, level)
    return PairedDifference(mean, low, high, minimum_detectable_effect(d, alpha, power), len(d), level)


def _percentile_ci(x: np.ndarray, resamples: int, seed: int, level: float) -> tuple[float, float, float]:
    """Mean of `x` and its percentile bootstrap CI (scipy); without spread, every resample has
    the same mean, so the interval is that mean."""
    mean = float(x.mean())
    if len(x) < 2 or np.all(x == x[0]):
        return mean, mean, mean
    res = stats.bootstrap((x,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
                          vectorized=True, batch=1000, rng=np.random.default_rng(seed))
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_ci(values: np.ndarray, resamples: int = 10_000, seed: int = 0, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean of per-user values and its percentile bootstrap CI over users."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    return _percentile_ci(x, resamples, seed, level)


@dataclass(frozen=True)
class Bootstrap:
    """Settings of the paired bootstrap over test users (`params:evaluate`, `params:study`'s
    `evaluate`): every comparison of a report is `difference` with the same settings."""

    resamples: int = 10_000
    seed: int = 0
    level: float = LEVEL

    def difference(self, a: np.ndarray, b: np.ndarray) -> PairedDifference:
        """`paired_difference` of A − B with these settings."""
        return paired_difference(a, b, self.resamples, self.seed, self.level)
