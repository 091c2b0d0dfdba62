"""Thin Kedro glue for `reward`; the work is in `adagrpo_pipeline.reward`."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.informativeness import InformativenessSettings, reward_informativeness
from adagrpo_pipeline.metrics import evaluate_scores
from adagrpo_pipeline.policy.config import EvaluateParams
from adagrpo_pipeline.policy.data import load_checked_policy, seen_before_holdout
from adagrpo_pipeline.recdata.prepare import HELD_OUT_TEST, HELD_OUT_VALID, drop_held_out
from adagrpo_pipeline.reward.calibration import apply_calibrator, calibrate
from adagrpo_pipeline.reward.config import RewardParams
from adagrpo_pipeline.reward.data import (
    EventIndex,
    Requests,
    build_requests,
    flat_scores_labels,
)
from adagrpo_pipeline.reward.features import Encoded, FeatureRanker, encode_attributes
from adagrpo_pipeline.reward.model import load_ranker, ranker_checkpoint
from adagrpo_pipeline.reward.report import (
    exposure_bias_auc,
    plot_reliability,
    probability_metrics,
    relevance_by_decile,
)
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.reward.train import score_requests, train_ranker
from adagrpo_pipeline.sasrec.model import catalog_scores
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.tracking import metrics_payload, mlflow_logger
from adagrpo_pipeline.training import resolve_device
from adagrpo_pipeline.training.checkpoint import Checkpoint

log = logging.getLogger(__name__)


def _requests(impressions: pd.DataFrame, interactions: pd.DataFrame, items: pd.DataFrame, valid: pd.DataFrame,
              test: pd.DataFrame) -> tuple[EventIndex, Requests]:
    events = EventIndex.from_interactions(interactions)
    bad = impressions["item_id"].to_numpy() >= len(items)
    if bad.any():
        raise ValueError(f"impressions: {int(bad.sum())} rows name item ids outside the catalog of {len(items)} items")
    return events, build_requests(impressions, events, valid, test)


def train_reward_ranker(impressions: pd.DataFrame, interactions: pd.DataFrame, items: pd.DataFrame,
                        valid_sequences: pd.DataFrame, test_sequences: pd.DataFrame, users: pd.DataFrame,
                        item_embeddings: dict[str, Any], params: RewardParams) -> tuple[Checkpoint, pd.DataFrame]:
    events, req = _requests(impressions, interactions, items, valid_sequences, test_sequences)
    counts = {s: int((req.split == s).sum()) for s in ("train", "valid", "test", "after")}
    log.info("ranker requests: %s (slate width %d)", counts, req.slates.shape[1])
    f, p = params.ranker.features, params.ranker
    build, spec = None, {}
    if f.any:
        n_users = max(int(interactions["user_id"].max()) + 1, len(users))
        no_codes = Encoded(np.zeros((0, 1), dtype=np.int64), 1, {})
        u = (encode_attributes(users, "user_id", n_users, f.user_columns, f.buckets, f.max_categories, f.prefix)
             if f.users else no_codes)
        it = (encode_attributes(items, "item_id", len(items), f.item_columns, f.buckets, f.max_categories, f.prefix)
              if f.items else Encoded(np.zeros((len(items), 1), dtype=np.int64), 1, {}))
        text = item_embeddings["embeddings"].float() if f.text else None
        if text is not None and text.shape[0] != len(items):
            raise ValueError(f"item_embeddings has {text.shape[0]} rows for {len(items)} items: run `tokenize` on these items")
        spec = {"users": u.spec, "items": it.spec, "text_dim": 0 if text is None else int(text.shape[1])}
        log.info("ranker features: users %s, items %s, text %s, position %s", list(u.spec) or "none",
                 list(it.spec) or "none", spec["text_dim"] or "none", f.position)

        def build():
            return FeatureRanker(len(items), p.max_history, p.model, torch.as_tensor(u.codes), u.size,
                                 torch.as_tensor(it.codes), it.size, text, req.slates.shape[1])
    res = train_ranker(len(items), events, req.subset(req.split == "train"), req.subset(req.split == "valid"),
                       p, log_fn=mlflow_logger("ranker"), build=build)
    ckpt = ranker_checkpoint(res.model, stage="reward", best_step=res.best_step, best_valid_auc=res.best_auc,
                             requests=counts, features=spec)
    return ckpt, res.history


def calibrate_reward(ranker_model: Checkpoint, impressions: pd.DataFrame, interactions: pd.DataFrame, items: pd.DataFrame,
                     valid_sequences: pd.DataFrame, test_sequences: pd.DataFrame, params: RewardParams) -> dict[str, Any]:
    """Fit every calibrator on one part of the valid users' impressions, keep the lowest
    log-loss on the other part (test impressions stay untouched for the report)."""
    device = resolve_device(params.ranker.device)
    ranker = load_ranker(ranker_model, device)
    events, req = _requests(impressions, interactions, items, valid_sequences, test_sequences)
    valid = req.subset(req.split == "valid")
    users = np.unique(valid.users)
    rng = np.random.default_rng(params.calibration.seed)
    select_users = rng.choice(users, max(1, int(round(len(users) * params.calibration.select_fraction))), replace=False)
    is_select = np.isin(valid.users, select_users)
    scores = score_requests(ranker, events, valid, params.batch_size, device)
    fit = flat_scores_labels(scores[~is_select], valid.subset(~is_select))
    select = flat_scores_labels(scores[is_select], valid.subset(is_select))
    result = calibrate(list(params.calibration.methods), fit, select)
    for m, c in result["candidates"].items():
        log.info("calibration %s: select log-loss %.5f", m, c["select_logloss"])
    log.info("calibration chosen: %s (fit on %d impressions, selected on %d)", result["chosen"]["method"],
             len(fit[0]), len(select[0]))
    return {**result, "fit_impressions": len(fit[0]), "select_impressions": len(select[0])}


def report_reward(ranker_model: Checkpoint, reward_calibration: dict[str, Any], impressions: pd.DataFrame,
                  interactions: pd.DataFrame, items: pd.DataFrame, valid_sequences: pd.DataFrame,
                  test_sequences: pd.DataFrame, ground_truth_relevance: pd.DataFrame,
                  params: RewardParams) -> tuple[pd.DataFrame, pd.DataFrame, Figure, dict[str, Any]]:
    device = resolve_device(params.ranker.device)
    ranker = load_ranker(ranker_model, device)
    cal = reward_calibration["chosen"]
    bins = params.report.ece_bins
    events, req = _requests(impressions, interactions, items, valid_sequences, test_sequences)
    test = req.subset(req.split == "test")
    s, y = flat_scores_labels(score_requests(ranker, events, test, params.batch_size, device), test)
    rows = []
    for stage, c in (("raw", None), ("calibrated", cal)):
        for name, value in probability_metrics(s, y, c, bins).items():
            rows.append({"section": "test_impressions", "calibration": stage, "metric": name, "value": value})

    histories = test_sequences["history"]
    targets = test_sequences["target"].to_numpy()
    scores = catalog_scores(ranker, histories, params.batch_size, test_sequences["user_id"].to_numpy())
    exposure = np.bincount(impressions["item_id"].to_numpy(), minlength=len(items))
    for name, value in exposure_bias_auc(scores, targets, exposure, params.report.negatives, params.report.seed).items():
        rows.append({"section": "next_item", "calibration": "raw", "metric": name, "value": value})
    table = pd.DataFrame(rows)

    if len(ground_truth_relevance):
        popularity = np.bincount(drop_held_out(interactions, HELD_OUT_VALID)["item_id"], minlength=len(items))
        rewards = apply_calibrator(cal, scores)
        deciles = relevance_by_decile(rewards, test_sequences["user_id"].to_numpy(), ground_truth_relevance, popularity)
    else:
        deciles = pd.DataFrame({"popularity_decile": pd.Series(dtype=str), "pairs": pd.Series(dtype="int64"),
                                "spearman": pd.Series(dtype=float)})
        log.info("no ground-truth relevance for this source: reward/relevance correlation skipped (synthetic source only)")

    fig = plot_reliability(s, y, cal, bins, f"Ranker reliability on test impressions ({len(y)} shown items)")
    flat = {f"{r.calibration}_{r.metric}" if r.section == "test_impressions" else r.metric: r.value for r in table.itertuples()}
    flat.update({f"spearman_relevance_decile_{d}": v for d, v in zip(deciles["popularity_decile"], deciles["spearman"], strict=True)})
    log.info("ranker report: %s", ", ".join(f"{k}={v:.4f}" for k, v in flat.items()))
    return table, deciles, fig, metrics_payload(flat)


def ranker_retrieval(ranker_model: Checkpoint, reward_calibration: dict[str, Any], test_sequences: pd.DataFrame,
                     interactions: pd.DataFrame, reward_params: RewardParams,
                     params: EvaluateParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The impression ranker used as a full-catalog retriever on the test split (a reward
    model, not a baseline: the `ranker_as_retriever` reference row) and its per-user hits."""
    reward = RewardModel.from_artifacts(ranker_model, reward_calibration, reward_params, resolve_device(params.device))
    scores = catalog_scores(reward.ranker, test_sequences["history"], reward_params.batch_size,
                            test_sequences["user_id"].to_numpy())
    seen = seen_before_holdout(interactions, test_sequences["user_id"].to_numpy(), held_out=HELD_OUT_TEST)
    m, hits = evaluate_scores(scores, test_sequences, seen, params.ks, reward)
    log.info("ranker as retriever (test): hr@10=%.4f ndcg@10=%.4f hr@10_filtered=%.4f ndcg@10_filtered=%.4f",
             m["hr@10"], m["ndcg@10"], m["hr@10_filtered"], m["ndcg@10_filtered"])
    return pd.DataFrame([{"model": "ranker_as_retriever", "checkpoint_stage": "reward", "step": 0, **m}]), hits


def measure_reward_informativeness(sft_policy: Checkpoint, ranker_model: Checkpoint, reward_calibration: dict[str, Any],
                                   valid_sequences: pd.DataFrame, interactions: pd.DataFrame, items: pd.DataFrame,
                                   semantic_ids: pd.DataFrame, sid_vocab: dict[str, Any], sid_trie: dict,
                                   params: RewardParams, rl_params: AdaGrpoParams) -> tuple[dict[str, Any], dict[str, Any]]:
    """Does the reward separate the true item from the SFT policy's own rollouts? On the valid
    split, with the RL stage's rollout settings, k_rew and seed (see
    `adagrpo_pipeline.adagrpo.informativeness`): the figures (JSON and MLflow)."""
    device = resolve_device(params.ranker.device)
    model, encoder = load_checked_policy(sft_policy, semantic_ids, sid_vocab, device)
    reward = RewardModel.from_artifacts(ranker_model, reward_calibration, params, device)
    popularity = np.bincount(drop_held_out(interactions, HELD_OUT_VALID)["item_id"], minlength=len(items))
    seen = seen_before_holdout(interactions, valid_sequences["user_id"].to_numpy(), held_out=HELD_OUT_VALID)
    p = params.informativeness
    settings = InformativenessSettings(rl_params.k_rew, rl_params.seed, p.batch_size, p.random_draws, p.resamples)
    figures, per_sample = reward_informativeness(model, encoder, valid_sequences, SidTrie.from_tensors(sid_trie), reward,
                                                 rl_params.rollout, popularity, seen, settings, device)
    log.info("reward informativeness (valid, SFT rollouts): AUC y* vs rollouts %.3f [%.3f, %.3f] (unseen rollouts %.3f); "
             "d_rew <= %d passes %.3f vs a random reward's %.3f ± %.3f; Spearman(reward, popularity) %+.3f; "
             "history items %.1f%% of valid rollouts, reward %.3f vs %.3f; retriever HR@10 filt. %.4f vs popularity %.4f",
             figures["auc_target_vs_rollouts"], figures["auc_target_vs_rollouts_ci_low"],
             figures["auc_target_vs_rollouts_ci_high"], figures["auc_target_vs_unseen_rollouts"], rl_params.k_rew,
             figures["pass_rate_reward"], figures["pass_rate_random_mean"], figures["pass_rate_random_std"],
             figures["spearman_reward_popularity"], 100 * figures["history_rollout_share"], figures["reward_history_items"],
             figures["reward_other_items"], figures["retriever_hr@10_filtered"], figures["popularity_hr@10_filtered"])
    document = {"figures": figures, "split": "valid", "policy": "sft", "k_rew": rl_params.k_rew, "seed": rl_params.seed,
                "rollout": rl_params.rollout.model_dump(), "seen_item_reward": params.seen_item_reward,
                "per_sample_summary": per_sample.describe().to_dict()}
    return document, metrics_payload(figures)  # MLflow: reward_informativeness_metrics.<figure>
