"""Probability-quality metrics of a click model: AUC, log-loss, expected calibration error."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

EPS = 1e-7


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def logloss(labels: np.ndarray, probs: np.ndarray) -> float:
    return float(log_loss(labels, np.clip(probs, EPS, 1 - EPS), labels=[0, 1]))


def reliability_bins(labels: np.ndarray, probs: np.ndarray, bins: int) -> dict[str, np.ndarray]:
    """Equal-width bins over [0, 1]: count, mean predicted probability, observed click rate."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    which = np.minimum((probs * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(which, probs, minlength=bins) / count
        rate = np.bincount(which, labels, minlength=bins) / count
    return {"lower": np.arange(bins) / bins, "upper": np.arange(1, bins + 1) / bins, "count": count,
            "confidence": conf, "click_rate": rate}


def ece(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: Σ_b (n_b / n) |click rate_b − mean probability_b|."""
    r = reliability_bins(labels, probs, bins)
    used = r["count"] > 0
    return float(np.sum(r["count"][used] / r["count"].sum() * np.abs(r["click_rate"][used] - r["confidence"][used])))


def pairwise_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of the positive > score of a negative) per row, ties count 1/2, averaged:
    `pos` (n,), `neg` (n, m)."""
    pos = np.asarray(pos)[:, None]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())
