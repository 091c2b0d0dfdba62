"""A prefix tree of every item's semantic-ID token sequence, as flat tensors for batched
constrained decoding on any device.

Node 0 is the empty prefix; nodes of depth d are the distinct length-d prefixes, numbered
level by level in lexicographic order, so a node's children are one contiguous, token-sorted
run of edges (CSR). Every operation takes a batch of nodes and works with tensor ops only:

- `step(nodes, tokens)`: the child reached by each token, or -1 (one `searchsorted` over the
  sorted edge keys parent * vocab_size + token);
- `allowed_mask(nodes)`: a (batch, vocab) boolean mask of valid next tokens;
- `lookup(token_sequences)`: the item of each full sequence, or -1 if it names no item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch


@dataclass
class SidTrie:
    child_offsets: torch.Tensor  # (n_nodes + 1,) edges of node v: child_offsets[v]:child_offsets[v + 1]
    edge_tokens: torch.Tensor  # (n_edges,) token id on each edge, sorted within a node
    edge_child: torch.Tensor  # (n_edges,) node reached by each edge
    edge_keys: torch.Tensor  # (n_edges,) parent * vocab_size + token, ascending
    leaf_item: torch.Tensor  # (n_nodes,) item id of a leaf, -1 for inner nodes
    vocab_size: int
    depth: int

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, tokens: np.ndarray, item_ids: np.ndarray, vocab_size: int) -> SidTrie:
        """`tokens`: (n_items, L) token ids, unique rows; `item_ids`: (n_items,)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        n, depth = tokens.shape
        if len(np.unique(tokens, axis=0)) != n:
            raise ValueError("semantic-ID token sequences are not unique: the trie needs one leaf per item")
        if tokens.min() < 0 or tokens.max() >= vocab_size:
            raise ValueError(f"token ids must be in [0, {vocab_size})")
        node_of = np.zeros((n, depth + 1), dtype=np.int64)  # node of each item's prefix at each depth
        parents, edge_tok, next_id = [], [], 1
        for d in range(1, depth + 1):
            uniq, first, inverse = np.unique(tokens[:, :d], axis=0, return_index=True, return_inverse=True)
            node_of[:, d] = next_id + inverse.ravel()
            parents.append(node_of[first, d - 1])
            edge_tok.append(uniq[:, -1])
            next_id += len(uniq)
        parent = np.concatenate(parents)
        tok = np.concatenate(edge_tok)
        child = np.arange(1, next_id, dtype=np.int64)
        order = np.lexsort((tok, parent))  # already sorted by construction; made explicit
        parent, tok, child = parent[order], tok[order], child[order]
        offsets = np.zeros(next_id + 1, dtype=np.int64)
        np.add.at(offsets, parent + 1, 1)
        offsets = np.cumsum(offsets)
        leaf = np.full(next_id, -1, dtype=np.int64)
        leaf[node_of[:, depth]] = np.asarray(item_ids, dtype=np.int64)
        t = torch.as_tensor
        return cls(t(offsets), t(tok), t(child), t(parent * vocab_size + tok), t(leaf), int(vocab_size), int(depth))

    # ------------------------------------------------------------------ persistence
    _TENSORS: ClassVar[tuple[str, ...]] = ("child_offsets", "edge_tokens", "edge_child", "edge_keys", "leaf_item")
    FORMAT_VERSION: ClassVar[int] = 1

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Everything as tensors (scalars 0-dim), for a safetensors file."""
        tensors = {k: getattr(self, k).contiguous() for k in self._TENSORS}
        tensors.update({k: torch.tensor(v) for k, v in (("vocab_size", self.vocab_size), ("depth", self.depth),
                                                          ("format_version", self.FORMAT_VERSION))})
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> SidTrie:
        missing = [k for k in (*cls._TENSORS, "vocab_size", "depth", "format_version") if k not in tensors]
        if missing or int(tensors["format_version"]) != cls.FORMAT_VERSION:
            raise ValueError(f"not a sid_trie v{cls.FORMAT_VERSION} tensor dict (missing {missing})")
        return cls(**{k: tensors[k].long() for k in cls._TENSORS},
                   vocab_size=int(tensors["vocab_size"]), depth=int(tensors["depth"]))

    def to(self, device: torch.device | str) -> SidTrie:
        moved = {k: getattr(self, k).to(device) for k in self._TENSORS}
        return SidTrie(**moved, vocab_size=self.vocab_size, depth=self.depth)

    @property
    def device(self) -> torch.device:
        return self.edge_keys.device

    @property
    def n_items(self) -> int:
        return int((self.leaf_item >= 0).sum())

    # ------------------------------------------------------------------ batched queries
    def step(self, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Child of each node by each token; -1 where the edge does not exist (or node is -1)."""
        keys = nodes.clamp(min=0) * self.vocab_size + tokens
        pos = torch.searchsorted(self.edge_keys, keys).clamp(max=len(self.edge_keys) - 1)
        found = (self.edge_keys[pos] == keys) & (nodes >= 0) & (tokens >= 0) & (tokens < self.vocab_size)
        return torch.where(found, self.edge_child[pos], torch.full_like(nodes, -1))

    def allowed_mask(self, nodes: torch.Tensor) -> torch.Tensor:
        """(len(nodes), vocab_size) bool: the tokens that extend each node's prefix validly."""
        flat = nodes.reshape(-1)
        valid = flat >= 0
        safe = flat.clamp(min=0)
        start = self.child_offsets[safe]
        counts = torch.where(valid, self.child_offsets[safe + 1] - start, torch.zeros_like(start))
        rows = torch.repeat_interleave(torch.arange(len(flat), device=flat.device), counts)
        first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        edges = torch.repeat_interleave(start, counts) + torch.arange(int(counts.sum()), device=flat.device) - first
        mask = torch.zeros(len(flat), self.vocab_size, dtype=torch.bool, device=flat.device)
        mask[rows, self.edge_tokens[edges]] = True
        return mask.reshape(*nodes.shape, self.vocab_size)

    def walk(self, token_sequences: torch.Tensor) -> torch.Tensor:
        """Node reached by each (…, L') token prefix from the root, -1 once it leaves the trie."""
        nodes = torch.zeros(token_sequences.shape[:-1], dtype=torch.long, device=token_sequences.device)
        for d in range(token_sequences.shape[-1]):
            nodes = self.step(nodes, token_sequences[..., d])
        return nodes

    def lookup(self, token_sequences: torch.Tensor) -> torch.Tensor:
        """Item id of each full (…, depth) token sequence, -1 if it names no item."""
        if token_sequences.shape[-1] != self.depth:
            raise ValueError(f"sequences have {token_sequences.shape[-1]} tokens, items have {self.depth}")
        nodes = self.walk(token_sequences)
        return torch.where(nodes >= 0, self.leaf_item[nodes.clamp(min=0)], torch.full_like(nodes, -1))
