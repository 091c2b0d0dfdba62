"""What a production ranker sees and the generative policy does not (docs/architecture.md, "The
algorithm"): user attributes (MovieLens-100k: age, gender, occupation, zip code), item
attributes (genres, year) and the item's text embedding, and the impression's position.

Attributes become integer codes in one vocabulary per side (user, item): a numeric column →
`buckets` quantile buckets; a text column → its `max_categories` most frequent values (others
share one code), after keeping the first `prefix` characters where `prefix` names the column
(e.g. the zip code's first digit, a region); a column whose values list several entries
separated by ", " (genres) → one code per entry. Code 0 = none (padding). The codes are stored
with the ranker's weights, so a checkpoint scores any user and item of its data alone.

`FeatureRanker` = the project's SASRec ranker plus those features:
score(u, i) = ⟨h_u + Σ E_user[codes(u)], e_i + mean E_item[codes(i)] + W·text_i⟩ + b_i, and, in
training only, + b_pos[position] (the position effect is learnt beside the relevance and left
out at scoring time, where there is no position).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from adagrpo_pipeline.sasrec.config import SASRecSize
from adagrpo_pipeline.sasrec.model import OFFSET, SASRec

MULTI_SEP = ", "
NOT_FEATURES = ("user_id", "item_id", "title", "text")


@dataclass
class Encoded:
    """Codes (n_entities, slots) int64, 0 = none; the vocabulary size (codes < size); how each
    column was coded (JSON)."""

    codes: np.ndarray
    size: int
    spec: dict[str, Any]


def encode_attributes(table: pd.DataFrame, id_column: str, n: int, columns: list[str] | None, buckets: int,
                      max_categories: int, prefix: dict[str, int]) -> Encoded:
    """Integer codes of the attribute columns of `table` (one row per id 0..n-1; `columns`
    None = every column but ids, titles and texts)."""
    cols = [c for c in table.columns if c not in NOT_FEATURES] if columns is None else list(columns)
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(f"reward.features names column(s) {missing} that the {id_column[:-3]}s table lacks "
                         f"(it has {list(table.columns)})")
    rows = table.set_index(id_column).reindex(np.arange(n))
    slots: list[np.ndarray] = []
    spec: dict[str, Any] = {}
    offset = 1
    for c in cols:
        values = rows[c].astype("string").fillna("").str.strip()
        if c in prefix:
            values = values.str[: prefix[c]]
        numeric = pd.to_numeric(values.where(values != ""), errors="coerce")
        present = (values != "").sum()
        if present and numeric.notna().sum() > 0.9 * present and numeric.nunique() > buckets:  # a number: quantile buckets
            edges = np.unique(np.nanquantile(numeric.to_numpy(np.float64), np.linspace(0, 1, buckets + 1)[1:-1]))
            code = np.where(numeric.isna(), 0, 1 + np.searchsorted(edges, numeric.fillna(0).to_numpy(), side="right"))
            slots.append((code + np.where(code > 0, offset - 1, 0))[:, None])
            spec[c] = {"kind": "buckets", "edges": edges.tolist(), "offset": offset}
            offset += len(edges) + 1
            continue
        lists = values.str.split(MULTI_SEP, regex=False) if values.str.contains(MULTI_SEP, regex=False).any() else None
        flat = pd.Series(np.concatenate(lists.to_list())) if lists is not None else values
        counts = flat[flat != ""].value_counts()
        vocab = {v: offset + i for i, v in enumerate(counts.index[:max_categories])}
        other = offset + len(vocab)
        def code_of(v: str) -> int:
            return 0 if v == "" else vocab.get(v, other)
        if lists is None:
            slots.append(np.array([code_of(v) for v in values], dtype=np.int64)[:, None])
        else:
            width = max(1, max(len(x) for x in lists))
            m = np.zeros((n, width), dtype=np.int64)
            for r, entries in enumerate(lists):
                codes = [code_of(v) for v in entries]
                m[r, : len(codes)] = codes
            slots.append(m)
        spec[c] = {"kind": "multi" if lists is not None else "category", "values": list(vocab), "offset": offset}
        offset = other + 1
    codes = np.concatenate(slots, axis=1) if slots else np.zeros((n, 1), dtype=np.int64)
    return Encoded(codes.astype(np.int64), offset, spec)


class FeatureRanker(nn.Module):
    """The SASRec ranker with user/item attributes, the item text embedding and a training-only
    position bias (module docstring). Same scoring interface as `SASRec`, plus `users`."""

    def __init__(self, n_items: int, max_history: int, size: SASRecSize, user_codes: torch.Tensor, user_vocab: int,
                 item_codes: torch.Tensor, item_vocab: int, text: torch.Tensor | None, positions: int):
        super().__init__()
        self.seq = SASRec(n_items, max_history, size)
        self.n_items, self.max_history, self.size = n_items, max_history, size
        d = size.d_model
        self.register_buffer("user_codes", torch.as_tensor(user_codes, dtype=torch.long))
        self.register_buffer("item_codes", torch.as_tensor(item_codes, dtype=torch.long))
        self.user_emb = nn.EmbeddingBag(user_vocab, d, mode="sum", padding_idx=0)
        self.item_attr = nn.EmbeddingBag(item_vocab, d, mode="mean", padding_idx=0)
        self.register_buffer("text", torch.as_tensor(text, dtype=torch.float32) if text is not None
                             else torch.zeros((n_items, 0)))
        self.text_proj = nn.Linear(self.text.shape[1], d, bias=False) if self.text.shape[1] else None
        self.item_bias = nn.Embedding(n_items, 1)
        self.pos_bias = nn.Embedding(max(positions, 1), 1)
        for emb in (self.user_emb, self.item_attr):
            nn.init.normal_(emb.weight, std=d**-0.5)
            with torch.no_grad():
                emb.weight[0].zero_()
        nn.init.zeros_(self.item_bias.weight)
        nn.init.zeros_(self.pos_bias.weight)

    reads_users = True  # scoring functions pass the samples' user ids

    @property
    def users_needed(self) -> bool:
        return self.user_codes.shape[0] > 0 and bool((self.user_codes > 0).any())

    def user_state(self, tokens: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        h = self.seq.user_state(tokens, lengths)
        if self.user_codes.shape[0] == 0:  # no user attributes
            return h
        if users is None:
            if self.users_needed:
                raise ValueError("this ranker reads user attributes: pass the samples' user ids")
            return h
        return h + self.user_emb(self.user_codes[users.long()])

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """(..., d) representation of item ids (>= 0)."""
        flat = items.reshape(-1)
        v = self.seq.item_emb(flat + OFFSET) + self.item_attr(self.item_codes[flat])
        if self.text_proj is not None:
            v = v + self.text_proj(self.text[flat])
        return v.reshape(*items.shape, -1)

    def score(self, state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Raw scores of item ids (B, S) for states (B, d); -1 entries: meaningless, mask them."""
        safe = items.clamp(min=0)
        return (self.item_vectors(safe) * state[:, None, :]).sum(-1) + self.item_bias(safe).squeeze(-1)

    def score_all(self, state: torch.Tensor) -> torch.Tensor:
        all_items = torch.arange(self.n_items, device=state.device)
        return state @ self.item_vectors(all_items).T + self.item_bias.weight[:, 0]

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, items: torch.Tensor, users: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        s = self.score(self.user_state(tokens, lengths, users), items)
        if positions is not None:
            s = s + self.pos_bias(positions.clamp(0, self.pos_bias.num_embeddings - 1)).squeeze(-1)
        return s
