"""The impression ranker: the project's SASRec (`adagrpo_pipeline.sasrec.model`) trained on
logged slates, as a checkpoint of kind `sasrec_ranker`, or with side features
(`adagrpo_pipeline.reward.features.FeatureRanker`), kind `feature_ranker`; the controlled study's
oracle (`adagrpo_pipeline.reward.oracle`) loads the same way, kind `oracle_relevance`."""

from __future__ import annotations

from typing import Any

import torch

from adagrpo_pipeline.sasrec.config import SASRecSize
from adagrpo_pipeline.sasrec.model import SASRec, load_sasrec, sasrec_checkpoint
from adagrpo_pipeline.training import cpu_state_dict
from adagrpo_pipeline.training.checkpoint import Checkpoint

from .features import FeatureRanker
from .oracle import KIND as ORACLE_KIND
from .oracle import OracleRanker, load_oracle

KIND = "sasrec_ranker"
FEATURE_KIND = "feature_ranker"


def ranker_checkpoint(model: SASRec | FeatureRanker, **metadata: Any) -> Checkpoint:
    if isinstance(model, FeatureRanker):
        config = {"kind": FEATURE_KIND, "n_items": model.n_items, "max_history": model.max_history,
                  "size": model.size.model_dump(), "user_vocab": model.user_emb.num_embeddings,
                  "item_vocab": model.item_attr.num_embeddings, "positions": model.pos_bias.num_embeddings,
                  "n_users": model.user_codes.shape[0], "user_slots": model.user_codes.shape[1],
                  "item_slots": model.item_codes.shape[1], "text_dim": model.text.shape[1], **metadata}
        return Checkpoint(config, cpu_state_dict(model))
    return sasrec_checkpoint(model, KIND, **metadata)


def load_ranker(ckpt: Checkpoint, device: torch.device | str = "cpu") -> SASRec | FeatureRanker | OracleRanker:
    c = ckpt.config
    if c.get("kind") == ORACLE_KIND:
        return load_oracle(ckpt, device)
    if c.get("kind") != FEATURE_KIND:
        return load_sasrec(ckpt, KIND, device)
    model = FeatureRanker(int(c["n_items"]), int(c["max_history"]), SASRecSize(**c["size"]),
                          torch.zeros((c["n_users"], c["user_slots"]), dtype=torch.long), int(c["user_vocab"]),
                          torch.zeros((c["n_items"], c["item_slots"]), dtype=torch.long), int(c["item_vocab"]),
                          torch.zeros((c["n_items"], c["text_dim"])), int(c["positions"]))
    model.load_state_dict(ckpt.tensors)
    return model.to(device).eval()
