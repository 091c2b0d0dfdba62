"""Simulator generation and ingest at the controlled study's size: wall time and peak memory.

    python benchmarks/study_data.py                       # conf/base study size, every bias level
    python benchmarks/study_data.py --n-users 20000 --n-items 3000 --requests 40   # conf/gpu's

Each bias level runs in a fresh subprocess, twice: the simulator alone, then the `ingest`
stage's nodes in the pipeline's order (simulate → validate raw tables → prepare → validate derived →
measure exposure), so each figure's peak resident memory (ru_maxrss) is that step's own.
The bound for comparison is the simulator's bare arithmetic: one (users × items) affinity
matrix product per request, timed alone. Prints one JSON line per level, then a summary JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _child(mode: str, synthetic: dict) -> dict:
    import numpy as np

    from adagrpo_pipeline.pipelines.ingest import nodes as n
    from adagrpo_pipeline.recdata.config import IngestParams
    from adagrpo_pipeline.recdata.simulator import SyntheticParams, simulate

    t0 = time.perf_counter()
    out: dict = {"mode": mode}
    if mode == "simulate":
        raw = simulate(SyntheticParams(**synthetic))
        out.update(events=len(raw.interactions), impressions=len(raw.impressions), relevance_rows=len(raw.relevance))
    elif mode == "bound":
        p = SyntheticParams(**synthetic)
        rng = np.random.default_rng(0)
        u, v = rng.normal(size=(p.n_users, p.dim)), rng.normal(size=(p.n_items, p.dim))
        t0 = time.perf_counter()
        for _ in range(p.requests_per_user):
            a = u @ v.T
            np.argpartition(-a, p.slate_size - 1, axis=1)
    else:
        base = yaml.safe_load((ROOT / "conf/base/parameters_study.yml").read_text())["study"]
        p = IngestParams.model_validate({"source": "synthetic", "synthetic": synthetic,
                                         **base["overrides"].get("ingest", {})})
        raw = n.load_raw_source(p)
        items, inter, imp = n.validate_raw_tables(raw[1], raw[0], raw[2], raw[5], p)
        d = n.prepare_tables(inter, items, imp, raw[3], raw[4], p)
        n.validate_derived_tables(d["interactions"], d["impressions"], d["items"], d["train_sequences"],
                                  d["valid_sequences"], d["test_sequences"], d["ground_truth_relevance"], d["users"], p)
        n.measure_exposure(d["impressions"], d["interactions"], d["items"], p)
        out.update(users=len(d["users"]), items=len(d["items"]), events=len(d["interactions"]),
                   train_samples=len(d["train_sequences"]))
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-users", type=int)
    ap.add_argument("--n-items", type=int)
    ap.add_argument("--requests", type=int)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        mode, synthetic = json.loads(a.child)
        print(json.dumps(_child(mode, synthetic)))
        return
    study = yaml.safe_load((ROOT / "conf/base/parameters_study.yml").read_text())["study"]
    synthetic = dict(study["synthetic"])
    for key, value in (("n_users", a.n_users), ("n_items", a.n_items), ("requests_per_user", a.requests)):
        if value is not None:
            synthetic[key] = value
    results = []
    for level in study["bias_levels"]:
        syn = {**synthetic, "exposure_gamma": level["exposure_gamma"], "latent_attributes": True}
        row = {"level": level["name"], "exposure_gamma": level["exposure_gamma"]}
        for mode in ("bound", "simulate", "ingest"):
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps([mode, syn])], capture_output=True,
                                  text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            row.update({f"{mode}_{k}": v for k, v in r.items() if k != "mode"})
        row["simulate_over_bound"] = row["simulate_seconds"] / row["bound_seconds"]
        print(json.dumps(row))
        results.append(row)
    print(json.dumps({"n_users": synthetic["n_users"], "n_items": synthetic["n_items"],
                      "requests_per_user": synthetic["requests_per_user"],
                      "max_simulate_seconds": max(r["simulate_seconds"] for r in results),
                      "max_ingest_seconds": max(r["ingest_seconds"] for r in results),
                      "max_ingest_peak_rss_mb": max(r["ingest_peak_rss_mb"] for r in results)}))


if __name__ == "__main__":
    main()
