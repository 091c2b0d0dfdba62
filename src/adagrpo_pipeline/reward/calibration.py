"""Calibration of raw ranker scores (logits) into click probabilities: Platt scaling,
temperature scaling and isotonic regression (scikit-learn / scipy fits), chosen by log-loss
on held-out data. A fitted calibrator is a small JSON document (never a pickle) and applies
on any torch device."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from .metrics import logloss


def fit_calibrator(method: str, scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if labels.min() == labels.max():
        raise ValueError("calibration data must hold both clicked and non-clicked impressions")
    if method == "platt":
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(scores[:, None], labels)
        return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
    if method == "temperature":
        def nll(log_t: float) -> float:
            return logloss(labels, 1.0 / (1.0 + np.exp(-scores / np.exp(log_t))))
        res = minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded")
        return {"method": "temperature", "temperature": float(np.exp(res.x))}
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
        return {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    raise ValueError(f"unknown calibration method {method!r} (platt | temperature | isotonic)")


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """np.interp on torch: piecewise linear through (xp, fp), constant outside [xp0, xp-1]."""
    if len(xp) == 1:
        return fp.expand_as(x).clone()
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, len(xp) - 1)
    x0, x1, y0, y1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = ((x - x0) / (x1 - x0).clamp(min=1e-12)).clamp(0.0, 1.0)
    return y0 + w * (y1 - y0)


def apply_calibrator(cal: dict[str, Any] | None, scores: torch.Tensor) -> torch.Tensor:
    """Calibrated probabilities of raw scores (any shape, any device); None = plain sigmoid.
    Every method is non-decreasing in the score."""
    scores = scores.float()
    if cal is None:
        return torch.sigmoid(scores)
    method = cal["method"]
    if method == "platt":
        return torch.sigmoid(cal["a"] * scores + cal["b"])
    if method == "temperature":
        return torch.sigmoid(scores / cal["temperature"])
    if method == "isotonic":
        xp = torch.as_tensor(cal["x"], dtype=torch.float32, device=scores.device)
        fp = torch.as_tensor(cal["y"], dtype=torch.float32, device=scores.device)
        return _interp(scores, xp, fp)
    raise ValueError(f"unknown calibration method {method!r}")


def calibrate(methods: list[str], fit: tuple[np.ndarray, np.ndarray], select: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Fit each method on `fit` (scores, labels), keep the lowest log-loss on `select`.
    Returns {"chosen": calibrator, "candidates": {method: {"calibrator", "select_logloss"}}}."""
    if not methods:
        raise ValueError("reward.calibration.methods is empty")
    candidates = {}
    for m in methods:
        cal = fit_calibrator(m, *fit)
        p = apply_calibrator(cal, torch.as_tensor(select[0])).numpy()
        candidates[m] = {"calibrator": cal, "select_logloss": logloss(select[1], p)}
    best = min(candidates, key=lambda m: candidates[m]["select_logloss"])
    return {"chosen": candidates[best]["calibrator"], "candidates": candidates}
