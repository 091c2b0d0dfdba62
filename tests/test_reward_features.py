"""The ranker's side features, the feature ranker, the users table and the personalised
logging policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from adagrpo_pipeline.recdata.exposure_policy import cooccurrence_neighbors, derive_impressions
from adagrpo_pipeline.recdata.prepare import users_table
from adagrpo_pipeline.reward.features import FeatureRanker, encode_attributes
from adagrpo_pipeline.reward.model import load_ranker, ranker_checkpoint
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.sasrec.config import SASRecSize
from adagrpo_pipeline.sasrec.model import catalog_scores, pack_histories

SIZE = SASRecSize(d_model=16, num_layers=1, num_heads=2, d_ff=32, dropout=0.0)


def test_attributes_become_codes_by_kind() -> None:
    users = pd.DataFrame({"user_id": [0, 1, 2, 3], "age": ["18", "25", "40", "60"], "gender": ["M", "F", "M", ""],
                          "zip_code": ["85711", "94043", "8", "94110"]})
    enc = encode_attributes(users, "user_id", 5, None, buckets=2, max_categories=50, prefix={"zip_code": 1})
    age, gender, zipc = (enc.spec[c] for c in ("age", "gender", "zip_code"))
    assert age["kind"] == "buckets" and len(age["edges"]) == 1  # 4 numbers > 2 buckets: quantile buckets
    assert gender["values"] == ["M", "F"] and sorted(zipc["values"]) == ["8", "9"]
    codes = enc.codes
    assert codes.shape == (5, 3) and (codes[4] == 0).all()  # user 4 is not in the table: no codes
    assert codes[3, 1] == 0  # gender '' -> none
    assert codes[0, 2] == codes[2, 2] != codes[1, 2]  # zip 85711 and 8 share region '8'
    assert enc.size > codes.max()
    numeric = encode_attributes(pd.DataFrame({"item_id": range(20), "year": [str(1950 + i) for i in range(20)],
                                              "genres": ["Drama, Comedy"] * 10 + ["Drama"] * 10}),
                                "item_id", 20, None, buckets=4, max_categories=50, prefix={})
    assert numeric.spec["year"]["kind"] == "buckets" and len(numeric.spec["year"]["edges"]) == 3
    year = numeric.codes[:, 0]
    assert (np.diff(year) >= 0).all() and len(np.unique(year)) == 4  # ordered quantile buckets
    assert numeric.spec["genres"]["kind"] == "multi" and numeric.codes.shape[1] == 3
    drama = numeric.spec["genres"]["offset"] + numeric.spec["genres"]["values"].index("Drama")
    assert (numeric.codes[:, 1:] == drama).any(axis=1).all()
    with pytest.raises(ValueError, match=r"names column\(s\) \['colour'\]"):
        encode_attributes(users, "user_id", 5, ["colour"], 2, 50, {})


def _ranker() -> FeatureRanker:
    torch.manual_seed(0)
    user_codes = torch.tensor([[1, 3], [2, 3], [1, 4]])
    item_codes = torch.tensor([[1], [2], [1], [0], [2], [1]])
    return FeatureRanker(6, 4, SIZE, user_codes, 5, item_codes, 3, torch.randn(6, 7), positions=10).eval()


def test_feature_ranker_reads_users_and_round_trips() -> None:
    model = _ranker()
    hist = [np.array([0, 1]), np.array([2]), np.array([3, 4, 5])]
    users = np.array([0, 1, 2])
    reward = RewardModel(model, None, batch_size=2)
    cand = torch.tensor([[0, 1], [2, 3], [4, 5]])
    a = reward.raw_scores(hist, cand, users)
    b = reward.raw_scores(hist, cand, np.array([2, 1, 0]))
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])  # the user's attributes enter the score
    with pytest.raises(ValueError, match="reads user attributes"):
        reward.raw_scores(hist, cand)
    full = catalog_scores(model, hist, 2, users)
    assert torch.allclose(full.gather(1, cand), a, atol=1e-5)  # catalog scoring = candidate scoring
    # the position bias enters training scores only
    tokens, lengths = pack_histories(hist, 4)
    state = model.user_state(tokens, lengths, torch.as_tensor(users))
    with torch.no_grad():
        model.pos_bias.weight[3] = 5.0
    with_pos = model(tokens, lengths, cand, users=torch.as_tensor(users), positions=torch.full_like(cand, 3))
    assert torch.allclose(with_pos - model.score(state, cand), torch.full_like(with_pos, 5.0), atol=1e-5)
    loaded = load_ranker(ranker_checkpoint(model, stage="reward"))
    assert type(loaded) is FeatureRanker
    assert torch.allclose(RewardModel(loaded, None).raw_scores(hist, cand, users), a, atol=1e-6)


def test_users_table_maps_raw_ids_and_marks_unknown_users() -> None:
    raw = pd.DataFrame({"user_id": [7, 3, 9], "age": ["30", "20", "40"], "gender": ["F", "M", "F"]})
    out = users_table(raw, np.array([3, 5, 7]))  # contiguous ids of the kept raw users 3, 5, 7
    assert out["user_id"].tolist() == [0, 1, 2] and out["age"].tolist() == ["20", "", "30"]
    assert list(users_table(None, np.array([1, 2])).columns) == ["user_id"]


def _interactions() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):  # two communities of items: users 0-19 rate items 0-9, users 20-39 items 10-19
        base = 0 if u < 20 else 10
        for t, i in enumerate(rng.permutation(10)[:8]):
            rows.append((u, base + int(i), 1_000 + t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def test_personalised_logging_draws_from_the_users_neighbourhood() -> None:
    inter = _interactions()
    idx, cum = cooccurrence_neighbors(inter, 20, window=3, k=5)
    assert ((idx[:10] < 10) | (np.diff(np.c_[np.zeros(10), cum[:10]], axis=1) == 0)).all()  # neighbours in the community
    # held-out events (each user's last two) do not count: an item pair seen only there has no weight
    last_two = inter.groupby("user_id").tail(2)
    assert len(last_two) == 80
    pop = derive_impressions(inter, 20, 4, 1.0, seed=0)
    pers = derive_impressions(inter, 20, 4, 1.0, seed=0, personalized_share=1.0, neighbors=5)
    pd.testing.assert_frame_equal(pers, derive_impressions(inter, 20, 4, 1.0, seed=0, personalized_share=1.0, neighbors=5))

    def same_community(imp: pd.DataFrame) -> float:
        neg = imp[~imp["clicked"]]
        return float(((neg["user_id"] < 20) == (neg["item_id"] < 10)).mean())

    assert same_community(pers) > 0.9 and same_community(pop) < 0.7  # first events (no history) fall back to popularity
    assert (pers.groupby("request_id")["item_id"].nunique() == 4).all()  # distinct items per slate
    clicked = pers[pers["clicked"]].set_index("request_id")["item_id"]
    assert (clicked.to_numpy() == inter["item_id"].to_numpy()).all()
