"""What the ranker report shows: probability quality before/after calibration, the exposure
bias seen through AUCs against two kinds of negatives, agreement with ground-truth relevance
(synthetic source), and the ranker as a full-catalog retriever."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from adagrpo_pipeline.recdata.exposure_policy import sample_distinct

from .calibration import apply_calibrator
from .metrics import auc, ece, logloss, pairwise_auc, reliability_bins


def probability_metrics(scores: np.ndarray, labels: np.ndarray, calibrator: dict[str, Any] | None, bins: int) -> dict[str, float]:
    p = apply_calibrator(calibrator, torch.as_tensor(scores)).numpy()
    return {"auc": auc(labels, p if calibrator is not None else scores), "logloss": logloss(labels, p),
            "ece": ece(labels, p, bins), "mean_prob": float(p.mean()), "click_rate": float(np.mean(labels))}


def plot_reliability(scores: np.ndarray, labels: np.ndarray, calibrator: dict[str, Any], bins: int, title: str) -> Figure:
    fig = Figure(figsize=(5.5, 6.5))
    ax, hx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
    for name, cal in (("raw sigmoid", None), (f"calibrated ({calibrator['method']})", calibrator)):
        p = apply_calibrator(cal, torch.as_tensor(scores)).numpy()
        r = reliability_bins(labels, p, bins)
        used = r["count"] > 0
        ax.plot(r["confidence"][used], r["click_rate"][used], marker="o", label=f"{name}: ECE {ece(labels, p, bins):.4f}")
        hx.bar((r["lower"] + r["upper"])[used] / 2, r["count"][used], width=1 / bins, alpha=0.5, label=name)
    ax.set(ylabel="observed click rate", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    hx.set(xlabel="predicted click probability", ylabel="impressions", yscale="log")
    fig.tight_layout()
    return fig


def exposure_bias_auc(scores: torch.Tensor, targets: np.ndarray, exposure: np.ndarray, negatives: int, seed: int) -> dict[str, float]:
    """AUC of the true next item against `negatives` items per user drawn (a) ∝ their exposure
    in the logs (what the ranker was trained to tell apart) and (b) uniformly from the catalog."""
    s = scores.cpu().numpy()
    rows = np.arange(len(targets))
    rng = np.random.default_rng(seed)
    out = {}
    for kind, weights in (("exposure", np.asarray(exposure, dtype=np.float64)), ("uniform", np.ones(s.shape[1]))):
        k = min(negatives, int(np.count_nonzero(weights)) - 1)
        neg = sample_distinct(np.cumsum(weights), np.asarray(targets, dtype=np.int64), k, rng)
        out[f"auc_{kind}_negatives"] = pairwise_auc(s[rows, targets], s[rows[:, None], neg])
    return out


def relevance_by_decile(rewards: torch.Tensor, users: np.ndarray, relevance: pd.DataFrame, popularity: np.ndarray) -> pd.DataFrame:
    """Spearman rank correlation between reward and ground-truth relevance over (user, item)
    pairs, overall and per item-popularity decile (1 = least popular)."""
    n_items = rewards.shape[1]
    rel = np.full((int(relevance["user_id"].max()) + 1, n_items), np.nan)
    rel[relevance["user_id"].to_numpy(), relevance["item_id"].to_numpy()] = relevance["relevance"].to_numpy()
    truth, r = rel[users], rewards.cpu().numpy()
    order = np.argsort(popularity, kind="stable")
    decile = np.empty(n_items, dtype=np.int64)
    decile[order] = np.arange(n_items) * 10 // n_items + 1
    rows = []
    for name, cols in [("all", np.arange(n_items))] + [(str(d), np.flatnonzero(decile == d)) for d in range(1, 11)]:
        t, x = truth[:, cols].ravel(), r[:, cols].ravel()
        ok = ~np.isnan(t)
        rho = spearmanr(x[ok], t[ok]).statistic if ok.sum() > 2 else np.nan
        rows.append({"popularity_decile": name, "pairs": int(ok.sum()), "spearman": float(rho)})
    return pd.DataFrame(rows)
