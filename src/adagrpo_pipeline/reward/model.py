"""The impression ranker: the project's SASRec (`adagrpo_pipeline.sasrec.model`) trained on
logged slates; as a checkpoint of kind `sasrec_ranker`."""

from __future__ import annotations

from typing import Any

import torch

from adagrpo_pipeline.sasrec.model import SASRec, load_sasrec, sasrec_checkpoint
from adagrpo_pipeline.training.checkpoint import Checkpoint

KIND = "sasrec_ranker"


def ranker_checkpoint(model: SASRec, **metadata: Any) -> Checkpoint:
    return sasrec_checkpoint(model, KIND, **metadata)


def load_ranker(ckpt: Checkpoint, device: torch.device | str = "cpu") -> SASRec:
    return load_sasrec(ckpt, KIND, device)
