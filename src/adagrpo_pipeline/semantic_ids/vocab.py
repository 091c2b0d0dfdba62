"""Token layout of semantic IDs: special tokens, then one block of token ids per level.

A level-l code c is the token `offsets[l] + c`. The layout is plain JSON (`sid_vocab`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

SPECIAL_TOKENS = {"pad": 0, "eos": 1, "bos": 2}


@dataclass(frozen=True)
class SidVocab:
    level_sizes: tuple[int, ...]
    special: dict[str, int] = field(default_factory=lambda: dict(SPECIAL_TOKENS))

    @property
    def levels(self) -> int:
        return len(self.level_sizes)

    @property
    def offsets(self) -> tuple[int, ...]:
        start = len(self.special)
        return tuple(int(x) for x in start + np.r_[0, np.cumsum(self.level_sizes)[:-1]])

    @property
    def size(self) -> int:
        return len(self.special) + int(sum(self.level_sizes))

    def encode(self, codes: np.ndarray) -> np.ndarray:
        """(n, L) level codes -> (n, L) token ids."""
        codes = np.asarray(codes)
        if codes.shape[-1] != self.levels:
            raise ValueError(f"codes have {codes.shape[-1]} levels, the vocabulary {self.levels}")
        if (codes < 0).any() or (codes >= np.asarray(self.level_sizes)).any():
            raise ValueError("a code is outside its level's range")
        return codes + np.asarray(self.offsets)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """(n, L) token ids -> (n, L) level codes (-1 where a token is not of that level)."""
        codes = np.asarray(tokens) - np.asarray(self.offsets)
        return np.where((codes >= 0) & (codes < np.asarray(self.level_sizes)), codes, -1)

    def to_json(self) -> dict:
        d = asdict(self)
        d["level_sizes"] = list(self.level_sizes)
        d["offsets"] = list(self.offsets)
        d["vocab_size"] = self.size
        return d

    @classmethod
    def from_json(cls, d: dict) -> SidVocab:
        vocab = cls(level_sizes=tuple(int(x) for x in d["level_sizes"]), special={k: int(v) for k, v in d["special"].items()})
        if "offsets" in d and list(d["offsets"]) != list(vocab.offsets):
            raise ValueError(f"sid_vocab offsets {d['offsets']} do not match the layout {list(vocab.offsets)}")
        return vocab
