"""Seeded simulator of exposure-biased recommendation logs (docs/architecture.md,
"Data contracts").

Items have a category, a brand, a price and a templated title; each has a latent vector
(its category's centroid plus noise), a quality bias and a popularity prior (Zipf over a
random permutation). Users start from a mix of one or two favourite categories and drift:
a small random step every request, plus a pull toward each item they click.

Every request shows a slate chosen by a logging policy biased toward popular items:
score = gamma * log(popularity prior) + personalization * noisy affinity + Gumbel noise,
top `slate_size`, already-clicked items excluded. Clicks follow a position-biased model:
P(click) = relevance(u, i) * (1 / log2(position + 2)) ** eta, where
relevance(u, i) = sigmoid(click_scale * <u, v_i> + quality_i + click_bias).

The simulator returns the ground-truth relevance of every (user, item) at each user's final
state, so the true noise of any reward model can be measured. With `latent_attributes`, the
items table also carries each item's latent vector (`latent_0` … `latent_<dim-1>`) and a users
table each user's final latent vector: what the controlled study (`adagrpo_pipeline.study`)
hands a ranker, with noise, to set how much it knows beyond the policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from .schema import RawTables

CATEGORY_NOUNS = (
    "headphones", "running shoes", "coffee maker", "backpack", "desk lamp", "novel",
    "board game", "yoga mat", "phone case", "water bottle", "sunglasses", "keyboard",
    "skillet", "rain jacket", "plant pot", "watch",
)
ADJECTIVES = ("compact", "classic", "premium", "lightweight", "everyday", "pro", "eco", "vintage")
SYLLABLES = ("ka", "lo", "mi", "ra", "te", "no", "vi", "su", "zen", "dor", "pax", "qui")

EPOCH_START = 1_577_836_800  # 2020-01-01T00:00:00Z
LATENT_PREFIX = "latent_"  # columns of the latent vectors (latent_attributes)


class SyntheticParams(BaseModel):
    """Size and behaviour of the simulated logs."""

    model_config = ConfigDict(extra="forbid")

    n_users: int = Field(500, ge=2)
    n_items: int = Field(800, ge=20)
    n_categories: int = Field(12, ge=2, le=len(CATEGORY_NOUNS))
    n_brands: int = Field(30, ge=1)
    dim: int = Field(16, ge=2)
    requests_per_user: int = Field(40, ge=3)
    slate_size: int = Field(10, ge=2)
    popularity_zipf: float = Field(1.0, ge=0.0, description="Zipf exponent of the popularity prior")
    exposure_gamma: float = Field(1.0, ge=0.0, description="weight of log-popularity in the logging policy")
    personalization: float = Field(2.0, ge=0.0, description="weight of noisy affinity in the logging policy")
    policy_noise: float = Field(1.0, ge=0.0, description="std of the logging policy's affinity noise")
    drift: float = Field(0.1, ge=0.0, description="std of the per-request random step of user vectors")
    click_pull: float = Field(0.2, ge=0.0, description="pull of a user vector toward a clicked item")
    click_scale: float = Field(4.0, gt=0.0)
    click_bias: float = Field(-2.0)
    position_eta: float = Field(1.0, ge=0.0, description="exponent of the position-bias curve")
    latent_attributes: bool = Field(False, description="items and users tables carry the latent vectors (latent_*)")
    seed: int = 0


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _brand_names(n: int, rng: np.random.Generator) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        name = "".join(rng.choice(SYLLABLES, size=rng.integers(2, 4))).capitalize()
        if name not in names:
            names.append(name)
    return names


def position_bias(slate_size: int, eta: float) -> np.ndarray:
    """Examination probability of each slate position: (1 / log2(position + 2)) ** eta."""
    return (1.0 / np.log2(np.arange(slate_size) + 2.0)) ** eta


@dataclass
class _World:
    """The latent state the logs are drawn from."""

    items: pd.DataFrame
    item_vec: np.ndarray  # (n_items, dim), unit norm
    quality: np.ndarray  # (n_items,)
    log_pop: np.ndarray  # (n_items,) log popularity prior
    user_vec: np.ndarray  # (n_users, dim), unit norm, drifts as users click
    request_ts: np.ndarray  # (n_users, requests_per_user)


def _items(p: SyntheticParams, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The catalog table, the category centroids, item vectors, quality and log popularity."""
    n_i = p.n_items
    centroids = _normalize(rng.normal(size=(p.n_categories, p.dim)))
    category = rng.integers(p.n_categories, size=n_i)
    brand = rng.integers(p.n_brands, size=n_i)
    item_vec = _normalize(centroids[category] + 0.6 * rng.normal(size=(n_i, p.dim)) / np.sqrt(p.dim))
    quality = rng.normal(0.0, 0.5, size=n_i)
    rank = rng.permutation(n_i) + 1
    log_pop = -p.popularity_zipf * np.log(rank)
    price = np.round(np.exp(rng.normal(3.0 + 0.1 * category, 0.5)), 2)
    brands = _brand_names(p.n_brands, rng)
    adjective = rng.choice(ADJECTIVES, size=n_i)
    titles = [
        f"{brands[b]} {adjective[i]} {CATEGORY_NOUNS[c]} {chr(65 + i % 26)}{100 + i}"
        for i, (c, b) in enumerate(zip(category, brand, strict=True))
    ]
    cat_names = np.asarray(CATEGORY_NOUNS)[category]
    brand_names = np.asarray(brands)[brand]
    items = pd.DataFrame(
        {
            "item_id": np.arange(n_i, dtype=np.int64),
            "title": titles,
            "text": [
                f"{t}. Category: {c}. Brand: {b}. Price: {pr:.2f}"
                for t, c, b, pr in zip(titles, cat_names, brand_names, price, strict=True)
            ],
            "category": cat_names,
            "brand": brand_names,
            "price": price,
        }
    )
    return items, centroids, item_vec, quality, log_pop


def _world(p: SyntheticParams, rng: np.random.Generator) -> _World:
    """Items, then users (one or two favourite categories) and their request times."""
    items, centroids, item_vec, quality, log_pop = _items(p, rng)
    n_u = p.n_users
    fav1 = rng.integers(p.n_categories, size=n_u)
    fav2 = rng.integers(p.n_categories, size=n_u)
    two = rng.random(n_u) < 0.5
    user_vec = _normalize(centroids[fav1] + np.where(two[:, None], centroids[fav2], 0.0) + 0.3 * rng.normal(size=(n_u, p.dim)))
    start = EPOCH_START + rng.integers(0, 180 * 86400, size=n_u)
    gaps = rng.exponential(86400.0, size=(n_u, p.requests_per_user)).astype(np.int64) + 60
    return _World(items, item_vec, quality, log_pop, user_vec, start[:, None] + np.cumsum(gaps, axis=1))


def _request(p: SyntheticParams, w: _World, t: int, clicked_mask: np.ndarray, examine: np.ndarray,
             rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Request `t` of every user: drift, the logging policy's slate, position-biased clicks, and
    the pull of each click on its user (updates `w.user_vec` and `clicked_mask`)."""
    n_u, s = p.n_users, len(examine)
    users = np.arange(n_u)
    w.user_vec = _normalize(w.user_vec + p.drift * rng.normal(size=w.user_vec.shape) / np.sqrt(p.dim))
    affinity = w.user_vec @ w.item_vec.T
    relevance = _sigmoid(p.click_scale * affinity + w.quality + p.click_bias)
    score = (
        p.exposure_gamma * w.log_pop
        + p.personalization * (affinity + p.policy_noise * rng.normal(size=affinity.shape) / np.sqrt(p.dim))
        + rng.gumbel(size=affinity.shape)
    )
    score[clicked_mask] = -np.inf
    top = np.argpartition(-score, s - 1, axis=1)[:, :s]
    order = np.argsort(-np.take_along_axis(score, top, axis=1), axis=1, kind="stable")
    slate = np.take_along_axis(top, order, axis=1)  # (n_u, s), position 0 first
    p_click = relevance[users[:, None], slate] * examine[None, :]
    clicks = rng.random(p_click.shape) < p_click
    ts = w.request_ts[:, t]
    impressions = pd.DataFrame(
        {
            "request_id": np.repeat(t * n_u + users, s),
            "user_id": np.repeat(users, s),
            "timestamp": np.repeat(ts, s),
            "item_id": slate.ravel(),
            "position": np.tile(np.arange(s), n_u),
            "clicked": clicks.ravel(),
        }
    )
    cu, cp = np.nonzero(clicks)
    ci = slate[cu, cp]
    clicks_frame = pd.DataFrame({"user_id": cu, "item_id": ci, "timestamp": ts[cu] + cp + 1, "event": "click"})
    clicked_mask[cu, ci] = True
    np.add.at(w.user_vec, cu, p.click_pull * w.item_vec[ci])
    w.user_vec = _normalize(w.user_vec)
    return impressions, clicks_frame


def simulate(p: SyntheticParams) -> RawTables:
    """Simulate interactions, impressions, items and ground-truth relevance."""
    rng = np.random.default_rng(p.seed)
    n_u, n_i = p.n_users, p.n_items
    w = _world(p, rng)
    examine = position_bias(min(p.slate_size, n_i), p.position_eta)
    clicked_mask = np.zeros((n_u, n_i), dtype=bool)
    frames = [_request(p, w, t, clicked_mask, examine, rng) for t in range(p.requests_per_user)]

    impressions = pd.concat([f[0] for f in frames], ignore_index=True)
    impressions = impressions.astype({"request_id": "int64", "user_id": "int64", "timestamp": "int64", "item_id": "int64", "position": "int16"})
    interactions = pd.concat([f[1] for f in frames], ignore_index=True).astype({"user_id": "int64", "item_id": "int64", "timestamp": "int64"})
    interactions = interactions.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    final_relevance = _sigmoid(p.click_scale * (w.user_vec @ w.item_vec.T) + w.quality + p.click_bias)
    relevance = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(n_u), n_i).astype(np.int64),
            "item_id": np.tile(np.arange(n_i), n_u).astype(np.int64),
            "relevance": final_relevance.ravel().astype(np.float64),
        }
    )
    items, users = w.items, None
    if p.latent_attributes:
        names = [f"{LATENT_PREFIX}{j}" for j in range(p.dim)]
        items = pd.concat([items, pd.DataFrame(w.item_vec, columns=names)], axis=1)
        users = pd.concat([pd.DataFrame({"user_id": np.arange(n_u, dtype=np.int64)}),
                           pd.DataFrame(w.user_vec, columns=names)], axis=1)
    return RawTables("synthetic", interactions, items, impressions, relevance, users)
