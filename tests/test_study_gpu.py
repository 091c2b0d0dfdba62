"""The controlled study's CUDA path (skipped, with the reason, where no CUDA device is present):
the oracle reward, an `oracle_gate` RL run and the per-user outcomes on the GPU agree with the
CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams, Variant
from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.adagrpo.train import train_rl
from adagrpo_pipeline.policy.data import seen_before_holdout
from adagrpo_pipeline.policy.evaluation import validation_metrics
from adagrpo_pipeline.policy.model import HistoryEncoder, PolicyLayout, PolicySize, build_policy
from adagrpo_pipeline.recdata.config import IngestParams
from adagrpo_pipeline.recdata.prepare import HELD_OUT_TEST, prepare
from adagrpo_pipeline.recdata.simulator import SyntheticParams, simulate
from adagrpo_pipeline.reward.config import RewardParams
from adagrpo_pipeline.reward.oracle import CALIBRATION, oracle_checkpoint
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.semantic_ids.quantize import add_dedup_level
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab
from adagrpo_pipeline.study.outcomes import list_outcomes
from adagrpo_pipeline.training import validation_subset

pytestmark = pytest.mark.gpu


def test_study_path_on_cuda_matches_cpu(tmp_path: Path) -> None:
    d = prepare(simulate(SyntheticParams(n_users=120, n_items=150, n_categories=4, n_brands=6, requests_per_user=20,
                                         seed=3, latent_attributes=True)), IngestParams(source="synthetic"))
    n_items = len(d.items)
    ckpt = oracle_checkpoint(d.relevance, len(d.users), n_items)
    params = RewardParams(seen_item_reward="invalid")
    cpu, gpu = (RewardModel.from_artifacts(ckpt, CALIBRATION, params, dev) for dev in ("cpu", "cuda"))
    rng = np.random.default_rng(0)
    cand = torch.as_tensor(rng.integers(-1, n_items, size=(len(d.test), 8)))
    users, hist = d.test["user_id"].to_numpy(), d.test["history"]
    np.testing.assert_allclose(gpu(hist, cand, users).cpu().numpy(), cpu(hist, cand, users).numpy(), atol=1e-6)

    vocab = SidVocab((8, 8, 8))
    tokens = vocab.encode(add_dedup_level(rng.integers(0, 8, size=(n_items, 2)), 8))
    trie = SidTrie.build(tokens, np.arange(n_items), vocab.size)
    layout = PolicyLayout(vocab, max_items=8)
    encoder = HistoryEncoder(layout, tokens)
    size = PolicySize(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4, dropout_rate=0.1)
    p = AdaGrpoParams(batch_size=32, max_steps=3, warmup_steps=0, checkpoint_every=3, eval_every=3, eval_users=20,
                      eval_beams=10, device="cuda", rollout={"group_size": 4, "constrained": True}, k_rew=1,
                      state_dir=str(tmp_path))
    res = train_rl(build_policy(layout, size, 0), encoder, d.train, d.valid, trie, gpu,
                   RunSpec.of(Variant("oracle_gate"), 0, "oracle_gate"), p, tmp_path, gate_reward=gpu, eval_reward=gpu)
    # the last validation, made on the GPU during training, recomputed on the CPU from the final weights
    last = res.history.dropna(subset=["valid_reward@10"]).iloc[-1]
    subset, _ = validation_subset(d.valid, None, p.eval_users, p.eval_seed)
    again = validation_metrics(res.model.to("cpu"), encoder, trie, subset, None, p.eval_beams, torch.device("cpu"), cpu)
    for key in ("valid_hr@10", "valid_hallucination@10", "valid_reward@10"):
        assert last[key] == pytest.approx(again[key], abs=0.02), key

    seen = seen_before_holdout(d.interactions, users, held_out=HELD_OUT_TEST)
    model = res.model
    on_gpu = list_outcomes(model.to("cuda"), encoder, trie, d.test, seen, gpu, 20, 64, torch.device("cuda"))
    on_cpu = list_outcomes(model.to("cpu"), encoder, trie, d.test, seen, cpu, 20, 64, torch.device("cpu"))
    assert on_gpu["utility@10"].between(0, 1).all()
    for col in ("hit@10_filtered", "utility@10", "hallucination@10"):
        assert on_gpu[col].mean() == pytest.approx(on_cpu[col].mean(), abs=0.02), col
