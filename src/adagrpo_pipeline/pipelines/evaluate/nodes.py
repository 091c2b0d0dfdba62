"""Thin Kedro glue for `evaluate`."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from adagrpo_pipeline.pipelines.adagrpo.nodes import reward_model_from
from adagrpo_pipeline.policy.checkpoint import Checkpoint, load_policy
from adagrpo_pipeline.policy.config import EvaluateParams
from adagrpo_pipeline.policy.data import check_same_semantic_ids, item_token_table, seen_before_holdout
from adagrpo_pipeline.policy.evaluation import evaluate_policy, list_metrics, list_quality
from adagrpo_pipeline.policy.metrics import popularity_ranking
from adagrpo_pipeline.policy.model import HistoryEncoder
from adagrpo_pipeline.semantic_ids.embeddings import drop_held_out, resolve_device
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab
from adagrpo_pipeline.tracking import metrics_payload

log = logging.getLogger(__name__)

KEY_METRICS = ("hr@10", "ndcg@10", "hallucination@10", "constrained_hr@10", "reward@10", "coverage@10")


def model_name(ckpt: Checkpoint) -> str:
    """"sft" for the SFT policy, the variant's namespace for an RL checkpoint."""
    return str(ckpt.config.get("namespace") or ckpt.config.get("stage", "policy"))


def evaluate_checkpoint(policy: Checkpoint, test_sequences: pd.DataFrame, interactions: pd.DataFrame,
                        semantic_ids: pd.DataFrame, sid_vocab: dict[str, Any], sid_trie: dict, ranker_model: Checkpoint,
                        reward_calibration: dict[str, Any], params: EvaluateParams) -> pd.DataFrame:
    """Test-split metrics of one saved policy checkpoint (DESIGN section 5)."""
    device = resolve_device(params.device)
    model, layout = load_policy(policy, device)
    if layout.sid_vocab != SidVocab.from_json(sid_vocab):
        raise ValueError("the policy checkpoint was trained on another semantic-ID vocabulary than `sid_vocab`")
    tokens = item_token_table(semantic_ids, layout.sid_vocab)
    check_same_semantic_ids(policy.config, tokens)
    encoder = HistoryEncoder(layout, tokens)
    seen = seen_before_holdout(interactions, test_sequences["user_id"].to_numpy(), held_out=1)
    beams = params.beam_factor * max(params.ks)
    m = evaluate_policy(model, encoder, SidTrie.from_tensors(sid_trie), test_sequences, params.ks, beams,
                        params.batch_size, device, seen, reward_model_from(ranker_model, reward_calibration, device))
    return pd.DataFrame([{"model": model_name(policy), "checkpoint_stage": policy.config.get("stage", ""),
                          "step": int(policy.config.get("step", policy.config.get("best_step", 0))), **m}])


def popularity_baseline(test_sequences: pd.DataFrame, interactions: pd.DataFrame, items: pd.DataFrame,
                        ranker_model: Checkpoint, reward_calibration: dict[str, Any], params: EvaluateParams) -> pd.DataFrame:
    """Most-interacted items (counted on every event before the test ones) for everyone."""
    popularity = np.bincount(drop_held_out(interactions, 1)["item_id"], minlength=len(items)).astype(float)
    users = test_sequences["user_id"].to_numpy()
    ranked = popularity_ranking(popularity, len(users), len(items))
    seen = seen_before_holdout(interactions, users, held_out=1)
    m = list_metrics(ranked, test_sequences["target"].to_numpy(), params.ks, seen)
    reward = reward_model_from(ranker_model, reward_calibration, resolve_device(params.device))
    m.update(list_quality(ranked, test_sequences["history"].to_list(), len(items), reward))
    return pd.DataFrame([{"model": "popularity", "checkpoint_stage": "", "step": 0, **m}])


def evaluation_report(*tables: pd.DataFrame) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    results = pd.concat(tables, ignore_index=True)
    metric_cols = [c for c in results.columns if c not in ("model", "checkpoint_stage", "step")]
    for _, row in results.iterrows():
        log.info("evaluate %s: %s", row["model"], ", ".join(f"{c}={row[c]:.4f}" for c in metric_cols
                                                              if c.startswith(KEY_METRICS) and row[c] == row[c]))
    shown = results.set_index("model")[metric_cols].T
    markdown = "# Evaluation (test split, leave-one-out, full catalog)\n\n" + shown.to_markdown(floatfmt=".4f") + "\n"
    mlflow_metrics: dict[str, Any] = {}
    for _, row in results.iterrows():
        mlflow_metrics.update(metrics_payload({c: row[c] for c in metric_cols}, prefix=f"{row['model']}."))
    return results, markdown, mlflow_metrics
