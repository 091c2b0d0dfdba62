"""Paired statistics: bootstrap CIs over users, the minimum detectable effect, and the level
each interval states."""

from __future__ import annotations

import numpy as np
import pytest

from adagrpo_pipeline.stats import (
    LEVEL,
    POWER,
    Bootstrap,
    mean_ci,
    minimum_detectable_effect,
    paired_difference,
    percent,
)


def test_a_known_difference_is_covered_and_resolved() -> None:
    n = 1000
    b = np.zeros(n)
    b[:200] = 1.0  # model B hits 20% of users
    a = b.copy()
    a[200:250] = 1.0  # model A also hits 50 more: Δ = +0.05 exactly
    d = paired_difference(a, b, resamples=5000, seed=1)
    assert d.delta == pytest.approx(0.05)
    assert d.ci_low < 0.05 < d.ci_high and d.ci_low > 0 and d.resolved and d.call == "above"
    # the discordant pairs are 50 users with d = 1: sd = sqrt(0.05 * 0.95 * n / (n - 1))
    sd = np.sqrt(0.05 * 0.95 * n / (n - 1))
    assert d.mde == pytest.approx((1.959964 + 0.841621) * sd / np.sqrt(n), rel=1e-5)
    assert d.ci_high - d.ci_low == pytest.approx(2 * 1.96 * sd / np.sqrt(n), rel=0.15)  # close to the normal interval


def test_identical_models_give_a_zero_width_interval_at_zero() -> None:
    rng = np.random.default_rng(0)
    hits = (rng.random((3, 500)) < 0.2).astype(float)
    d = paired_difference(hits, hits)
    assert (d.delta, d.ci_low, d.ci_high) == (0.0, 0.0, 0.0) and not d.resolved and d.call == "not resolved"


def test_seeds_are_averaged_per_user_before_the_difference() -> None:
    a = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]])  # per user: 0.5, 0, 1, 0.5
    b = np.array([0.0, 0.0, 1.0, 0.0])
    d = paired_difference(a, b, resamples=200)
    assert d.delta == pytest.approx(np.mean([0.5, 0.0, 0.0, 0.5]))
    with pytest.raises(ValueError, match="same users: 4 vs 3"):
        paired_difference(a, b[:3])


def test_a_difference_inside_the_noise_is_not_resolved() -> None:
    rng = np.random.default_rng(3)
    a = (rng.random(300) < 0.2).astype(float)
    b = a.copy()
    b[:2] = 1 - b[:2]
    d = paired_difference(a, b, resamples=2000)
    assert d.ci_low < 0 < d.ci_high and not d.resolved and abs(d.delta) < d.mde
    assert minimum_detectable_effect(np.array([1.0])) != minimum_detectable_effect(np.array([1.0]))  # NaN for one user


def test_mean_ci_brackets_the_mean() -> None:
    x = np.r_[np.full(60, 1.0), np.zeros(40), np.nan]
    mean, low, high = mean_ci(x, resamples=2000)
    assert mean == pytest.approx(0.6) and low < 0.6 < high
    assert mean_ci(np.full(5, 0.3)) == (0.3, 0.3, 0.3)


def test_an_interval_states_the_level_it_was_computed_at() -> None:
    b = np.zeros(1000)
    b[:200] = 1.0
    a = b.copy()
    a[200:250] = 1.0
    at90 = Bootstrap(resamples=2000, seed=1, level=0.9).difference(a, b)
    at95 = paired_difference(a, b, resamples=2000, seed=1)
    assert at90 == paired_difference(a, b, 2000, 1, 0.9) and at95.level == LEVEL == 0.95
    assert at90.text().endswith("(90% CI, 1000 users)") and at95.text().endswith("(95% CI, 1000 users)")
    assert at95.ci_low < at90.ci_low < at90.delta < at90.ci_high < at95.ci_high
    assert percent(POWER) == "80%"
