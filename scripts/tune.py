"""One tuning trial on the valid split, from the project's latest ingest outputs (run the main
job first): the `sasrec` retriever or the SFT policy with a JSON of parameter overrides. The
result (configuration, best step, time, valid HR@10 / NDCG@10 as decoded and history-filtered,
and the validation curve) is appended as one JSON line to notebooks/tuning/<model>_trials.jsonl;
notebooks/tuning.md reads them. Nothing here looks at the test split.

    python scripts/tune.py sasrec '{"lr": 0.003, "model": {"dropout": 0.5}}'
    python scripts/tune.py sft '{"sft": {"encoder_input": "items", "max_items": 50}}'
    python scripts/tune.py sft '{"tokenize": {"embedding": {"source": "cooccurrence"}}}'
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from adagrpo_pipeline.pipelines import tokenize
from adagrpo_pipeline.policy.config import SftParams
from adagrpo_pipeline.policy.data import item_token_table, seen_before_holdout
from adagrpo_pipeline.policy.model import HistoryEncoder, PolicyLayout, build_policy
from adagrpo_pipeline.policy.sft import train_sft
from adagrpo_pipeline.recdata.prepare import drop_held_out
from adagrpo_pipeline.sasrec.config import SasrecParams
from adagrpo_pipeline.sasrec.retrieval import train_sasrec
from adagrpo_pipeline.semantic_ids.config import TokenizeParams
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab
from adagrpo_pipeline.settings import CONFIG_LOADER_ARGS

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("hr@10", "ndcg@10", "hr@10_filtered", "ndcg@10_filtered")
log = logging.getLogger("tune")


DATA = ROOT / "data"


class _Kept(MemoryDataset):
    """A memory dataset the runner does not free, so its value can be read after the run."""

    def _release(self) -> None:
        pass


def latest(data: Path, relpath: str) -> pd.DataFrame:
    """The newest saved version of a versioned parquet dataset under the data folder."""
    versions = sorted((data / relpath).glob("*/*"))
    if not versions:
        raise FileNotFoundError(f"no version of {data / relpath}: run the main job (scripts/dev.sh run) first")
    return pd.read_parquet(versions[-1])


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def semantic_ids(items: pd.DataFrame, interactions: pd.DataFrame, params: TokenizeParams) -> tuple[Any, Any, Any]:
    """The `tokenize` pipeline in memory with these parameters."""
    catalog = DataCatalog()
    catalog["items"], catalog["interactions"], catalog["params:tokenize"] = items, interactions, params
    pipe = tokenize.create_pipeline()
    for name in pipe.all_outputs():
        catalog[name] = _Kept()
    SequentialRunner().run(pipe, catalog)
    return catalog.load("semantic_ids"), catalog.load("sid_vocab"), catalog.load("sid_trie")


def trial(model: str, overrides: dict[str, Any], data: Path = DATA) -> dict[str, Any]:
    conf = OmegaConfigLoader(str(ROOT / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": "base"})["parameters"]
    interactions, items = latest(data, "03_primary/interactions.parquet"), latest(data, "03_primary/items.parquet")
    valid = latest(data, "05_model_input/valid_sequences.parquet")
    seen = seen_before_holdout(interactions, valid["user_id"].to_numpy(), held_out=2)
    state = {"state_dir": tempfile.mkdtemp(prefix=f"tune_{model}_")}
    start = time.perf_counter()
    if model == "sasrec":
        p = SasrecParams.model_validate(merge(conf["evaluate"]["sasrec"], {**overrides, **state}))
        res = train_sasrec(len(items), drop_held_out(interactions, 2), valid, seen, p)
        history, best_step = res.history, res.best_step
    else:
        ids, vocab_json, trie = semantic_ids(items, interactions,
                                             TokenizeParams.model_validate(merge(conf["tokenize"], overrides.get("tokenize", {}))))
        p = SftParams.model_validate(merge(conf["sft"], {**overrides.get("sft", {}), **state}))
        vocab = SidVocab.from_json(vocab_json)
        layout = PolicyLayout(vocab, p.max_items, p.user_buckets, p.encoder_input)
        encoder = HistoryEncoder(layout, item_token_table(ids, vocab))
        start = time.perf_counter()
        res = train_sft(build_policy(layout, p.model, p.seed), encoder, latest(data, "05_model_input/train_sequences.parquet"),
                        valid, SidTrie.from_tensors(trie), p, seen_valid=seen)
        history, best_step = res.history, res.best_step
    h = history.set_index("step")
    best = h.loc[best_step]
    return {"model": model, "config": overrides, "best_step": int(best_step), "steps_run": int(h.index.max()),
            "train_seconds": round(time.perf_counter() - start, 1),
            **{f"valid_{m}": round(float(best[f"valid_{m}"]), 4) for m in METRICS},
            "curve_ndcg@10_filtered": {int(k): round(float(v), 4) for k, v in h["valid_ndcg@10_filtered"].items()}}


def render(folder: Path) -> str:
    """Every trial of every model in `folder` as Markdown tables (the order they ran in)."""
    lines = ["# Tuning trials (generated by scripts/tune.py; valid split only)", ""]
    for path in sorted(folder.glob("*_trials.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        table = pd.DataFrame([{"#": i + 1, "overrides of the defaults": json.dumps(r["config"]), "best step": r["best_step"],
                               "steps run": r["steps_run"], "train s": r["train_seconds"],
                               **{m: r[f"valid_{m}"] for m in METRICS}, "note": r.get("note", "")}
                              for i, r in enumerate(rows)])
        lines += [f"## {path.stem.removesuffix('_trials')}", "", table.to_markdown(index=False), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", choices=["sasrec", "sft"])
    ap.add_argument("overrides", nargs="?", default="{}", help="JSON of parameter overrides")
    ap.add_argument("--data", type=Path, default=DATA, help="the project's data folder (default: data/)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    row = trial(args.model, json.loads(args.overrides), args.data)
    out = ROOT / "notebooks" / "tuning" / f"{args.model}_trials.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    (out.parent / "trials.md").write_text(render(out.parent))
    log.info("%s", json.dumps(row))


if __name__ == "__main__":
    sys.exit(main())
