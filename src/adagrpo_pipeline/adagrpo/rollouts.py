"""Rollouts and teacher-forced log-probabilities of the RL stage (docs/architecture.md, "The
algorithm"): G candidates per sample from the policy, their rewards, and the token
log-probabilities of {y*} ∪ rollouts under any policy in one decoder pass.

Shapes: B samples, G rollouts per sample, L tokens per item."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.profiler import record_function

from adagrpo_pipeline.policy.decoder import GroupedDecoder
from adagrpo_pipeline.policy.decoding import beam_search, sample
from adagrpo_pipeline.policy.model import encoder_inputs
from adagrpo_pipeline.reward.reward import RewardModel, ranking_keys
from adagrpo_pipeline.semantic_ids.trie import SidTrie

from .config import RolloutParams


@dataclass
class Rollouts:
    seqs: torch.Tensor  # (B, 1 + G, L): y* then the G rollouts
    items: torch.Tensor  # (B, G) item id or -1
    rewards: torch.Tensor  # (B, G)
    target_reward: torch.Tensor  # (B,)
    raw: torch.Tensor  # (B, G) the ranker's raw scores (meaningless where items < 0)
    target_raw: torch.Tensor  # (B,)
    fixed: torch.Tensor  # (B, G) the reward is fixed (invalid, seen), not the ranker's
    target_fixed: torch.Tensor  # (B,)

    @property
    def keys(self) -> torch.Tensor:
        """(B, G) ranking keys of the reward diagnostic (`reward.ranking_keys`)."""
        return ranking_keys(self.raw, self.fixed)

    @property
    def target_key(self) -> torch.Tensor:
        return ranking_keys(self.target_raw, self.target_fixed)


def encode(model, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Encoder states (B, T, d) of the histories."""
    return model.get_encoder()(**encoder_inputs(model, x), attention_mask=mask).last_hidden_state


def sequence_logprobs(model, hidden: torch.Tensor, mask: torch.Tensor, seqs: torch.Tensor, start_token: int = 0) -> torch.Tensor:
    """Token log-probabilities (B, N, L) of N sequences per input under `model`, teacher forced,
    given the encoder states `hidden` (B, T, d): one decoder pass over B·N sequences, the
    cross-attention keys and values once per input (`policy.decoder.GroupedDecoder`)."""
    b, n, length = seqs.shape
    flat = seqs.reshape(b * n, length)
    dec_in = torch.cat([torch.full_like(flat[:, :1], start_token), flat[:, :-1]], dim=1)
    logits = GroupedDecoder(model, hidden, mask, n, length).logits(dec_in)
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, flat.unsqueeze(-1)).squeeze(-1)
    return logp.reshape(b, n, length)


def rollout(model, x: torch.Tensor, mask: torch.Tensor, target_tokens: torch.Tensor, targets: np.ndarray,
            histories: list, trie: SidTrie, reward_model: RewardModel, r: RolloutParams,
            generator: torch.Generator, users: np.ndarray | None = None, span: slice | None = None,
            total: int | None = None) -> Rollouts:
    """G candidates per sample (sampling at `r.temperature` or beam search; inside the trie or
    free), rewarded by `reward_model` (invalid → its `invalid_reward`), beside y* and its reward.
    `span`, `total`: these samples are rows `span` of a batch of `total` (see `sample`)."""
    constraint = trie if r.constrained else None
    with record_function("rl.rollouts"):
        if r.mode == "sample":
            dec = sample(model, x, mask, r.group_size, trie.depth, r.temperature, trie=constraint, lookup_trie=trie,
                         generator=generator, span=span, total=total)
        else:
            dec = beam_search(model, x, mask, r.group_size, trie.depth, trie=constraint, lookup_trie=trie)
        seqs = torch.cat([target_tokens[:, None, :], dec.tokens], dim=1)
    with record_function("rl.reward"):
        return _scored(seqs, dec.items, targets, histories, reward_model, users)


def rescore(ro: Rollouts, targets: np.ndarray, histories: list, reward_model: RewardModel,
            users: np.ndarray | None = None) -> Rollouts:
    """The same y* and rollouts scored by another reward model (e.g. the oracle of the controlled
    study, whose ranks give `oracle_gate` its d_rew)."""
    return _scored(ro.seqs, ro.items, targets, histories, reward_model, users)


def _scored(seqs: torch.Tensor, items: torch.Tensor, targets: np.ndarray, histories: list, reward_model: RewardModel,
            users: np.ndarray | None) -> Rollouts:
    """Rollouts of y* and the candidates `items`, with their rewards (one ranker pass for both)."""
    cand = torch.cat([torch.tensor(np.asarray(targets), device=items.device)[:, None], items], dim=1)
    scored = reward_model.score(histories, cand, users)
    rewards, raw = scored.rewards.float(), scored.raw.float()
    return Rollouts(seqs, items, rewards[:, 1:], rewards[:, 0], raw[:, 1:], raw[:, 0], scored.fixed[:, 1:],
                    scored.fixed[:, 0])


def rollout_generator(seed: int, offset: int, device: torch.device) -> torch.Generator:
    """The RNG of one rollout batch, seeded by (seed, offset): training uses the step as offset,
    sample diagnostics the first row of the batch, so any batch can be redrawn exactly."""
    return torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + offset)
