"""SASRec (Kang & McAuley, 2018): causal self-attention over a user's item history; the state at
a position scores every item by a dot product with the item's (shared input/output) embedding.

Two models of the project use it: the impression ranker of the `reward` stage (trained on
logged slates) and the `sasrec` reference retriever of `evaluate` (trained on the interaction
sequences with full-catalog cross-entropy). Histories are packed as token ids:
0 = pad, 1 = start-of-history, item id + 2; [BOS, oldest … newest, PAD …].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from adagrpo_pipeline.training import cpu_state_dict
from adagrpo_pipeline.training.checkpoint import Checkpoint

from .config import SASRecSize

PAD, BOS, OFFSET = 0, 1, 2


class SASRec(nn.Module):
    def __init__(self, n_items: int, max_history: int, size: SASRecSize):
        super().__init__()
        self.n_items, self.max_history, self.size = n_items, max_history, size
        self.item_emb = nn.Embedding(n_items + OFFSET, size.d_model, padding_idx=PAD)
        self.pos_emb = nn.Embedding(max_history + 1, size.d_model)
        self.dropout = nn.Dropout(size.dropout)
        layer = nn.TransformerEncoderLayer(size.d_model, size.num_heads, size.d_ff, size.dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, size.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(size.d_model)
        nn.init.normal_(self.item_emb.weight, std=size.d_model**-0.5)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()

    def states(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) packed histories -> (B, T, d): the state at every position, each seeing only
        itself and earlier positions. Position 0 (start-of-history) is never padded, so no row
        is fully masked."""
        t = tokens.shape[1]
        pos = torch.arange(t, device=tokens.device)
        x = self.item_emb(tokens) * self.size.d_model**0.5 + self.pos_emb(pos)[None]
        causal = torch.triu(torch.ones((t, t), dtype=torch.bool, device=tokens.device), diagonal=1)
        h = self.blocks(self.dropout(x), mask=causal, src_key_padding_mask=tokens == PAD)
        return self.norm(h)

    def user_state(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, d) state at the last real position (`lengths` include start-of-history)."""
        return self.states(tokens)[torch.arange(len(tokens), device=tokens.device), lengths - 1]

    def score(self, state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Raw scores (logits) of item ids `items` (B, S) for each state (B, d); -1 entries get
        the pad embedding (score 0): mask them yourself."""
        return (self.item_emb(torch.where(items >= 0, items + OFFSET, PAD)) * state[:, None, :]).sum(-1)

    def score_all(self, state: torch.Tensor) -> torch.Tensor:
        """(..., n_items) raw scores of the whole catalog for states (..., d)."""
        return state @ self.item_emb.weight[OFFSET:].T

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.score(self.user_state(tokens, lengths), items)


def pack_histories(histories: list[np.ndarray] | pd.Series, max_history: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit item-id histories (oldest first) -> packed (n, max_history + 1) token ids of
    their last `max_history` items, and lengths (including start-of-history)."""
    n = len(histories)
    packed = np.zeros((n, max_history + 1), dtype=np.int64)
    packed[:, 0] = BOS
    lengths = np.empty(n, dtype=np.int64)
    for row, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)[-max_history:] if max_history else np.zeros(0, dtype=np.int64)
        packed[row, 1 : 1 + len(h)] = h + OFFSET
        lengths[row] = len(h) + 1
    return torch.as_tensor(packed), torch.as_tensor(lengths)


@torch.no_grad()
def catalog_scores(model: SASRec, histories: list[np.ndarray] | pd.Series, batch_size: int,
                   users: np.ndarray | None = None) -> torch.Tensor:
    """(n, n_items) raw scores of every item for each history, on the model's device; `users`:
    the samples' user ids, for a model that reads user attributes (the feature ranker)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for lo in range(0, len(histories), batch_size):
        tokens, lengths = pack_histories(histories[lo : lo + batch_size], model.max_history)
        reads = users is not None and getattr(model, "reads_users", False)
        extra = (torch.as_tensor(np.array(users[lo : lo + batch_size], dtype=np.int64), device=device),) if reads else ()
        out.append(model.score_all(model.user_state(tokens.to(device), lengths.to(device), *extra)).float())
    return torch.cat(out) if out else torch.zeros((0, model.n_items), device=device)


def sasrec_checkpoint(model: SASRec, kind: str, **metadata: Any) -> Checkpoint:
    config = {"kind": kind, "n_items": model.n_items, "max_history": model.max_history,
              "size": model.size.model_dump(), **metadata}
    return Checkpoint(config, cpu_state_dict(model))


def load_sasrec(ckpt: Checkpoint, kind: str, device: torch.device | str = "cpu") -> SASRec:
    if ckpt.config.get("kind") != kind:
        raise ValueError(f"not a {kind} checkpoint (kind {ckpt.config.get('kind')!r})")
    model = SASRec(int(ckpt.config["n_items"]), int(ckpt.config["max_history"]), SASRecSize(**ckpt.config["size"]))
    model.load_state_dict(ckpt.tensors)
    return model.to(device).eval()
