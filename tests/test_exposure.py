"""Exposure policy and exposure-bias metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adagrpo_pipeline.recdata.config import ExposureThreshold
from adagrpo_pipeline.recdata.errors import ExposureBiasError
from adagrpo_pipeline.recdata.exposure import (
    check_thresholds,
    ctr_by_decile,
    exposure_metrics,
    gini,
    item_exposure_table,
    lorenz_curve,
    top_share,
)
from adagrpo_pipeline.recdata.exposure_policy import derive_impressions


def test_gini_known_values() -> None:
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.r_[np.zeros(9), 5.0]) == pytest.approx(0.9)
    assert gini(np.array([1.0, 3.0])) == pytest.approx(0.25)
    assert gini(np.zeros(4)) == 0.0


def test_top_share_and_lorenz() -> None:
    x = np.arange(1, 101, dtype=float)  # sum 5050
    assert top_share(x, 0.01) == pytest.approx(100 / 5050)
    assert top_share(x, 0.10) == pytest.approx(sum(range(91, 101)) / 5050)
    xs, ys = lorenz_curve(np.array([1.0, 1.0, 2.0]))
    np.testing.assert_allclose(xs, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(ys, [0, 0.25, 0.5, 1.0])


def _interactions(items: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"user_id": np.arange(len(items)) % 7, "item_id": items, "timestamp": np.arange(len(items)) + 10})


def test_derive_impressions_structure() -> None:
    rng = np.random.default_rng(0)
    inter = _interactions(rng.integers(0, 30, size=500))
    imp = derive_impressions(inter, n_items=30, slate_size=6, popularity_gamma=1.0, seed=1)
    assert len(imp) == 500 * 6
    assert imp["position"].dtype == "int16" and imp["clicked"].dtype == bool
    per_req = imp.groupby("request_id")
    assert per_req["clicked"].sum().eq(1).all()
    assert per_req["item_id"].nunique().eq(6).all()
    clicked = imp[imp["clicked"]].sort_values("request_id")
    assert clicked["item_id"].tolist() == inter["item_id"].tolist()
    assert clicked["timestamp"].tolist() == inter["timestamp"].tolist()
    # the clicked item is not always at the same position
    assert clicked["position"].nunique() == 6
    pd.testing.assert_frame_equal(imp, derive_impressions(inter, 30, 6, 1.0, seed=1))


def test_derive_impressions_draws_proportional_to_popularity_gamma() -> None:
    # One negative per request: P(j | clicked c) = w_j / (W - w_c), w = popularity ** gamma.
    rng = np.random.default_rng(0)
    items = rng.choice(10, size=20000, p=np.arange(1, 11) / 55)
    inter = _interactions(items)
    gamma = 2.0
    imp = derive_impressions(inter, n_items=10, slate_size=2, popularity_gamma=gamma, seed=3, chunk_size=777)
    drawn = imp[~imp["clicked"]]["item_id"].to_numpy()
    w = np.bincount(items, minlength=10).astype(float) ** gamma
    expected = np.zeros(10)
    for c, count in enumerate(np.bincount(items, minlength=10)):
        p = w.copy()
        p[c] = 0
        expected += count * p / p.sum()
    observed = np.bincount(drawn, minlength=10)
    assert np.max(np.abs(observed - expected) / np.sqrt(expected)) < 4.5  # within 4.5 sigma per item
    assert observed[9] > 10 * observed[0]


def test_metrics_ctr_deciles_and_thresholds() -> None:
    imp = pd.DataFrame({
        "item_id": [0, 0, 0, 1, 1, 2, 3, 3, 3, 3],
        "clicked": [1, 0, 0, 1, 0, 0, 1, 1, 0, 0],
    }).astype({"clicked": bool})
    inter = pd.DataFrame({"item_id": [0, 1, 3, 3]})
    per_item = item_exposure_table(imp, inter, n_items=5)
    assert per_item["impressions"].tolist() == [3, 2, 1, 4, 0]
    assert per_item["clicks"].tolist() == [1, 1, 0, 2, 0]
    m = exposure_metrics(per_item)
    assert m["catalog_coverage"] == pytest.approx(0.8)
    assert m["top1pct_share_exposure"] == pytest.approx(0.4)
    assert m["overall_ctr"] == pytest.approx(0.4)
    d = ctr_by_decile(per_item)
    assert d["n_items"].sum() == 5 and d["impressions"].sum() == 10
    status = check_thresholds(m, {"catalog_coverage": ExposureThreshold(warn=0.9, fail=0.5, direction="min")})
    assert status["catalog_coverage"] == "warn" and status["gini_exposure"] == "ok"
    with pytest.raises(ExposureBiasError, match=r"top1pct_share_exposure = 0.4000 is above its fail threshold 0.3"):
        check_thresholds(m, {"top1pct_share_exposure": ExposureThreshold(fail=0.3)})
    with pytest.raises(KeyError, match="unknown metric"):
        check_thresholds(m, {"gini": ExposureThreshold(fail=0.3)})


def test_sample_distinct_matches_exact_without_replacement_probabilities() -> None:
    from itertools import permutations

    from adagrpo_pipeline.recdata.exposure_policy import sample_distinct

    w = np.array([5.0, 3.0, 1.0, 1.0])
    exact = np.zeros(4)  # inclusion probability of each item in a sequential 2-draw without replacement
    for i, j in permutations(range(4), 2):
        p = w[i] / w.sum() * w[j] / (w.sum() - w[i])
        exact[i] += p
        exact[j] += p
    rows = 200_000
    got = sample_distinct(np.cumsum(w), np.full(rows, -1), 2, np.random.default_rng(0))
    assert (got[:, 0] != got[:, 1]).all()
    np.testing.assert_allclose(np.bincount(got.ravel(), minlength=4) / rows, exact, atol=0.005)


def test_sample_distinct_with_concentrated_weights_retries_until_distinct() -> None:
    from adagrpo_pipeline.recdata.exposure_policy import sample_distinct

    w = np.r_[1e6, np.ones(9)]  # item 0 takes ~99.999% of the mass: the first draws are all repeats
    exclude = np.r_[np.zeros(50, dtype=np.int64), np.full(50, 3)]
    got = sample_distinct(np.cumsum(w), exclude, 8, np.random.default_rng(1))
    assert all(len(set(row)) == 8 for row in got.tolist())
    assert not (got == exclude[:, None]).any()
    assert (got[50:] == 0).any(axis=1).all()  # the heavy item is in every slate where it is allowed


def test_derive_impressions_rejects_slates_larger_than_the_showable_catalog() -> None:
    with pytest.raises(ValueError, match=r"slate_size must be in \[1, 3\]"):
        derive_impressions(_interactions(np.array([0, 1, 2, 0])), n_items=5, slate_size=4, popularity_gamma=1.0, seed=0)
