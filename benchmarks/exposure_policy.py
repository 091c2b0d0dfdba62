"""Exposure-policy sampler: ours (draw with replacement, keep first distinct) vs the obvious
alternative, Gumbel-top-k over the whole catalog. Same weights, same number of requests.

    python benchmarks/exposure_policy.py [--requests 100000] [--items 1349 20000] [--slate 10]
                                         [--gamma 1.0] [--zipf 1.0]

Prints one line per catalog size and, last, one JSON object with every measurement. Both
samplers draw from the same distribution; the script also prints the largest difference in
per-item inclusion frequency between them (it should be sampling noise).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from adagrpo_pipeline.recdata.exposure_policy import gumbel_top_k, sample_distinct


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--items", type=int, nargs="+", default=[1349, 20_000])
    ap.add_argument("--slate", type=int, default=10)
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--zipf", type=float, default=1.0, help="popularity of the item of rank r ∝ r ** -zipf")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    results = []
    for n_items in args.items:
        rng = np.random.default_rng(args.seed)
        popularity = rng.permutation(np.arange(1, n_items + 1) ** -args.zipf)
        weights = popularity**args.gamma
        clicked = rng.choice(n_items, size=args.requests, p=weights / weights.sum())
        k = args.slate - 1

        t = time.perf_counter()
        ours = sample_distinct(np.cumsum(weights), clicked, k, np.random.default_rng(1))
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        base = gumbel_top_k(weights, clicked, k, np.random.default_rng(2))
        t_base = time.perf_counter() - t

        f_ours = np.bincount(ours.ravel(), minlength=n_items) / ours.size
        f_base = np.bincount(base.ravel(), minlength=n_items) / base.size
        row = {
            "items": n_items,
            "requests": args.requests,
            "slate": args.slate,
            "ours_s": round(t_ours, 3),
            "gumbel_top_k_s": round(t_base, 3),
            "speedup": round(t_base / t_ours, 2),
            "max_inclusion_freq_diff": float(np.abs(f_ours - f_base).max()),
        }
        results.append(row)
        print(f"items={n_items:>7} requests={args.requests} slate={args.slate}: ours {t_ours:.3f}s, "
              f"gumbel-top-k {t_base:.3f}s, speedup x{row['speedup']}, max |freq diff| {row['max_inclusion_freq_diff']:.5f}")
    print(json.dumps({"benchmark": "exposure_policy", "results": results}))


if __name__ == "__main__":
    main()
