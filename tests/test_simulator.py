"""The synthetic simulator: determinism and the biases it is meant to produce (measured)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adagrpo_pipeline.recdata.simulator import SyntheticParams, position_bias, simulate

SMALL = SyntheticParams(n_users=120, n_items=150, n_categories=5, n_brands=8, requests_per_user=25, seed=7)


@pytest.fixture(scope="module")
def sim():
    return simulate(SMALL)


def test_same_seed_same_logs_other_seed_differs(sim) -> None:
    again = simulate(SMALL)
    for a, b in ((sim.interactions, again.interactions), (sim.impressions, again.impressions),
                 (sim.items, again.items), (sim.relevance, again.relevance)):
        pd.testing.assert_frame_equal(a, b)
    other = simulate(SMALL.model_copy(update={"seed": 8}))
    assert not other.impressions["item_id"].equals(sim.impressions["item_id"])


def test_shapes_and_contracts(sim) -> None:
    p = SMALL
    assert len(sim.impressions) == p.n_users * p.requests_per_user * p.slate_size
    positions = sim.impressions.groupby("request_id")["position"].agg(lambda x: sorted(x.tolist()))
    assert all(pos == list(range(p.slate_size)) for pos in positions)
    assert not sim.impressions.duplicated(["request_id", "item_id"]).any()
    # every click is an impression marked clicked, one interaction each
    assert int(sim.impressions["clicked"].sum()) == len(sim.interactions)
    assert len(sim.relevance) == p.n_users * p.n_items
    assert sim.relevance["relevance"].between(0, 1).all()
    assert sim.items["text"].str.contains("Category: ").all()


def test_position_bias_is_visible_in_ctr(sim) -> None:
    ctr = sim.impressions.groupby("position")["clicked"].mean()
    assert ctr.iloc[0] > 1.5 * ctr.iloc[-1]
    np.testing.assert_allclose(position_bias(3, 1.0), [1.0, 1 / np.log2(3), 0.5])


def test_exposure_is_concentrated_on_popular_items(sim) -> None:
    exposure = np.bincount(sim.impressions["item_id"], minlength=SMALL.n_items)
    top = np.sort(exposure)[::-1]
    # the top 10% of items get far more than 10% of impressions
    assert top[: SMALL.n_items // 10].sum() / top.sum() > 0.25


def test_no_item_is_clicked_twice_by_a_user(sim) -> None:
    assert not sim.interactions.duplicated(["user_id", "item_id"]).any()
