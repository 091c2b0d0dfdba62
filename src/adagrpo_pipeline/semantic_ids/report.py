"""Tokenizer quality: collisions, codebook use, items per prefix, reconstruction error."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def tokenizer_report(semantic_codes: np.ndarray, full_codes: np.ndarray, level_sizes: list[int],
                     residual_error: list[float]) -> pd.DataFrame:
    """Long table (metric, level, value). `semantic_codes`: (n, L) before dedup; `full_codes`:
    (n, L + 1) with the dedup level; `level_sizes`: codebook size of each of the L + 1 levels."""
    n, levels = semantic_codes.shape
    if len(residual_error) != levels:
        raise ValueError(f"{len(residual_error)} reconstruction errors for {levels} semantic levels")
    rows: list[tuple[str, int, float]] = []
    n_unique = len(np.unique(semantic_codes, axis=0))
    _, counts = np.unique(semantic_codes, axis=0, return_counts=True)
    rows += [
        ("n_items", 0, float(n)),
        ("collision_rate", 0, 1.0 - n_unique / n),  # share of items that are not the first of their tuple
        ("items_in_collisions", 0, float(counts[counts > 1].sum() / n)),
        ("max_items_per_tuple", 0, float(counts.max())),
    ]
    for level in range(full_codes.shape[1]):
        used = len(np.unique(full_codes[:, level]))
        rows.append(("codebook_utilisation", level + 1, used / level_sizes[level]))
        rows.append(("codes_used", level + 1, float(used)))
    for depth in range(1, full_codes.shape[1] + 1):
        _, per_prefix = np.unique(full_codes[:, :depth], axis=0, return_counts=True)
        rows.append(("items_per_prefix_max", depth, float(per_prefix.max())))
        rows.append(("items_per_prefix_mean", depth, float(per_prefix.mean())))
    for level, err in enumerate(residual_error):
        rows.append(("reconstruction_error", level + 1, float(err)))
    return pd.DataFrame(rows, columns=["metric", "level", "value"])


def report_metrics(report: pd.DataFrame) -> dict[str, float]:
    """Flat names for MLflow: metric (level 0) or metric_l<level>."""
    return {(m if lvl == 0 else f"{m}_l{lvl}"): float(v) for m, lvl, v in report.itertuples(index=False)}


def plot_code_usage(full_codes: np.ndarray, level_sizes: list[int]) -> Figure:
    """Items per code at each level, codes sorted by use (a flat bar = balanced codebook)."""
    n_levels = full_codes.shape[1]
    fig = Figure(figsize=(3.2 * n_levels, 3.2))
    axes = fig.subplots(1, n_levels, squeeze=False)
    for level, ax in enumerate(axes[0]):
        counts = np.sort(np.bincount(full_codes[:, level], minlength=level_sizes[level]))[::-1]
        ax.bar(np.arange(len(counts)), counts, width=1.0, color="tab:blue")
        name = "dedup" if level == n_levels - 1 else f"level {level + 1}"
        ax.set_title(f"{name}: {np.count_nonzero(counts)}/{level_sizes[level]} codes used", fontsize=9)
        ax.set_xlabel("code (sorted by use)")
        if level == 0:
            ax.set_ylabel("items")
    fig.tight_layout()
    return fig
