"""The policy: a T5 encoder-decoder built from a `transformers` config, trained from scratch on
semantic-ID tokens. The encoder reads the user's history (each item as its L tokens, oldest
first, optionally preceded by a hashed user token); the decoder writes the next item's L tokens
after the decoder start token (pad, as in T5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import T5Config, T5ForConditionalGeneration

from adagrpo_pipeline.semantic_ids.vocab import SidVocab


class PolicySize(BaseModel):
    model_config = ConfigDict(extra="forbid")

    d_model: int = Field(64, ge=8)
    d_kv: int = Field(16, ge=4)
    d_ff: int = Field(256, ge=8)
    num_layers: int = Field(2, ge=1)
    num_decoder_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    dropout_rate: float = Field(0.05, ge=0.0, lt=1.0)
    relative_attention_num_buckets: int = Field(32, ge=2)
    relative_attention_max_distance: int = Field(128, ge=2)


EncoderInput = Literal["tokens", "items"]


@dataclass(frozen=True)
class PolicyLayout:
    """How histories become encoder inputs: the SID vocabulary, plus `user_buckets` hashed
    user tokens after it, and at most `max_items` history items.

    `encoder_input`: "tokens" (TIGER: one encoder position per SID token, L per item) or
    "items" (one position per item, embedded as the sum of its L token embeddings: L times
    shorter encoder sequences, so longer histories at the same cost)."""

    sid_vocab: SidVocab
    max_items: int
    user_buckets: int = 0
    encoder_input: EncoderInput = "tokens"

    @property
    def depth(self) -> int:
        return self.sid_vocab.levels

    @property
    def user_offset(self) -> int:
        return self.sid_vocab.size

    @property
    def vocab_size(self) -> int:
        return self.sid_vocab.size + self.user_buckets

    def to_json(self) -> dict:
        return {"sid_vocab": self.sid_vocab.to_json(), "max_items": self.max_items, "user_buckets": self.user_buckets,
                "encoder_input": self.encoder_input}

    @classmethod
    def from_json(cls, d: dict) -> PolicyLayout:
        return cls(SidVocab.from_json(d["sid_vocab"]), int(d["max_items"]), int(d["user_buckets"]),
                   d.get("encoder_input", "tokens"))


def t5_config(layout: PolicyLayout, size: PolicySize) -> T5Config:
    special = layout.sid_vocab.special
    return T5Config(
        vocab_size=layout.vocab_size,
        feed_forward_proj="relu",
        tie_word_embeddings=False,
        pad_token_id=special["pad"],
        eos_token_id=special["eos"],
        decoder_start_token_id=special["pad"],
        **size.model_dump(),
    )


def build_policy(layout: PolicyLayout, size: PolicySize, seed: int) -> T5ForConditionalGeneration:
    """A freshly initialised policy. The untied output layer is re-initialised with std
    d_model^-0.5 (transformers' T5 default, std 1.0, starts with logits of norm ~sqrt(d_model)
    and an initial loss several times log(vocab))."""
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(t5_config(layout, size))
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, size.d_model**-0.5)
    return model


def user_bucket(user_ids: np.ndarray, buckets: int) -> np.ndarray:
    """Deterministic hash of user ids into `buckets` (Knuth's multiplicative hash)."""
    return ((np.asarray(user_ids, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2**32) % np.uint64(buckets)).astype(np.int64)


class HistoryEncoder:
    """Turns item histories into padded encoder inputs, vectorised over the batch: (B, T) token
    ids for `encoder_input="tokens"`, (B, T, L) per-item token ids for `"items"`; with the
    attention mask (B, T)."""

    def __init__(self, layout: PolicyLayout, item_tokens: np.ndarray):
        """`item_tokens`: (n_items, L) token ids of every item, row = item id."""
        self.layout = layout
        self.item_tokens = np.asarray(item_tokens, dtype=np.int64)

    def __call__(self, histories: list[np.ndarray] | pd.Series, user_ids: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        m, depth, pad = self.layout.max_items, self.layout.depth, self.layout.sid_vocab.special["pad"]
        batch = len(histories)
        items = np.full((batch, m), -1, dtype=np.int64)
        for row, h in enumerate(histories):  # only slicing: the gather below is vectorised
            h = np.asarray(h, dtype=np.int64)[-m:]
            items[row, : len(h)] = h
        tokens = np.where(items[..., None] >= 0, self.item_tokens[items.clip(min=0)], pad)  # (B, m, L)
        if self.layout.user_buckets:
            if user_ids is None:
                raise ValueError("the layout has user tokens: pass user_ids")
            user = np.full((batch, 1, depth), pad, dtype=np.int64)
            user[:, 0, 0] = self.layout.user_offset + user_bucket(user_ids, self.layout.user_buckets)
            tokens = np.concatenate([user, tokens], axis=1)
        if self.layout.encoder_input == "tokens":
            flat = tokens.reshape(batch, -1)
            if self.layout.user_buckets:  # the user token is one position, not an L-token item
                flat = np.concatenate([flat[:, :1], flat[:, depth:]], axis=1)
            ids = torch.as_tensor(flat)
            return ids, (ids != pad).long()
        ids = torch.as_tensor(tokens)
        return ids, (ids != pad).any(-1).long()

    def targets(self, item_ids: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(self.item_tokens[np.asarray(item_ids, dtype=np.int64)])


def encoder_inputs(model: T5ForConditionalGeneration, ids: torch.Tensor, pad: int = 0) -> dict[str, torch.Tensor]:
    """Keyword arguments for the encoder: `input_ids` for (B, T) token ids, or `inputs_embeds`
    = the sum of each item's token embeddings (pad tokens excluded) for (B, T, L) item ids."""
    if ids.dim() == 2:
        return {"input_ids": ids}
    emb = model.get_input_embeddings()(ids) * (ids != pad).unsqueeze(-1)
    return {"inputs_embeds": emb.sum(dim=-2)}
