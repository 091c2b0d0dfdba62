"""SASRec-style ranker: causal self-attention over the history; the user state (output at the
last history position) scores an item by a dot product with the item's embedding."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adagrpo_pipeline.training import cpu_state_dict
from adagrpo_pipeline.training.checkpoint import Checkpoint

from .config import RankerSize
from .data import OFFSET, PAD

KIND = "sasrec_ranker"


class SASRec(nn.Module):
    def __init__(self, n_items: int, max_history: int, size: RankerSize):
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

    def user_state(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) packed histories (see `data.EventIndex.histories`) -> (B, d) state at the
        last real position. Position 0 (start-of-history) is never padded, so no row is fully
        masked."""
        t = tokens.shape[1]
        pos = torch.arange(t, device=tokens.device)
        x = self.item_emb(tokens) * self.size.d_model**0.5 + self.pos_emb(pos)[None]
        causal = torch.triu(torch.ones((t, t), dtype=torch.bool, device=tokens.device), diagonal=1)
        h = self.blocks(self.dropout(x), mask=causal, src_key_padding_mask=tokens == PAD)
        h = self.norm(h)
        return h[torch.arange(len(tokens), device=tokens.device), lengths - 1]

    def score(self, state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Raw scores (logits) of item ids `items` (B, S) for each state (B, d); -1 entries get
        the pad embedding (score 0): mask them yourself."""
        return (self.item_emb(torch.where(items >= 0, items + OFFSET, PAD)) * state[:, None, :]).sum(-1)

    def score_all(self, state: torch.Tensor) -> torch.Tensor:
        """(B, n_items) raw scores of the whole catalog."""
        return state @ self.item_emb.weight[OFFSET:].T

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.score(self.user_state(tokens, lengths), items)


def ranker_checkpoint(model: SASRec, **metadata: Any) -> Checkpoint:
    config = {"kind": KIND, "n_items": model.n_items, "max_history": model.max_history,
              "size": model.size.model_dump(), **metadata}
    return Checkpoint(config, cpu_state_dict(model))


def load_ranker(ckpt: Checkpoint, device: torch.device | str = "cpu") -> SASRec:
    if ckpt.config.get("kind") != KIND:
        raise ValueError(f"not a ranker checkpoint (kind {ckpt.config.get('kind')!r})")
    model = SASRec(int(ckpt.config["n_items"]), int(ckpt.config["max_history"]), RankerSize(**ckpt.config["size"]))
    model.load_state_dict(ckpt.tensors)
    return model.to(device).eval()
