"""The two rollout diagnostics of AdaGRPO and its gate (arXiv 2606.08480; docs/architecture.md,
"The algorithm"), written once for training, evaluation and the strata of the report.

Per sample, over C = unique({y*} ∪ rollouts):
- d_pol = rank of y* in C by the policy's sequence log-probability; passes when d_pol > k_pol
  (the policy does not already prefer y* to its own samples: it is uncertain);
- d_rew = rank of y* in C by reward, ties broken by the ranker's raw score (calibration is
  monotone, but isotonic calibration makes ties that would all count for y*); passes when
  d_rew ≤ k_rew (the ranker places the true item above the rollouts: its reward can be trusted
  on this sample);
- gate c = both pass. Ranks are 1-based; ties favour y*.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from adagrpo_pipeline.policy.model import HistoryEncoder
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.semantic_ids.trie import SidTrie

from .config import RolloutParams
from .rollouts import Rollouts, encode, rescore, rollout, rollout_generator, sequence_logprobs

GATE_COLUMNS = ("d_rew", "pass_rew", "admitted")  # what a second reward changes (d_pol is the policy's)


def sequence_keys(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """One int64 per token sequence (..., L) -> (...): equal keys <=> equal sequences."""
    key = torch.zeros(tokens.shape[:-1], dtype=torch.long, device=tokens.device)
    for level in range(tokens.shape[-1]):
        key = key * vocab_size + tokens[..., level].long()
    return key


def rank_of_target(target_key: torch.Tensor, target_value: torch.Tensor, keys: torch.Tensor,
                   values: torch.Tensor, target_tiebreak: torch.Tensor | None = None,
                   tiebreak: torch.Tensor | None = None) -> torch.Tensor:
    """Rank (1 = best) of the target in C = unique({target} ∪ candidates), by `values`
    (higher = better), then `tiebreak` among equal values: 1 + the number of distinct candidate
    sequences other than the target that are strictly better. target_*: (B,), others: (B, G)."""
    order = torch.sort(keys, dim=1, stable=True)
    sorted_keys = order.values
    first = torch.ones_like(sorted_keys, dtype=torch.bool)
    first[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    unique = torch.zeros_like(first).scatter(1, order.indices, first)  # first occurrence of each sequence
    better = values > target_value[:, None]
    if tiebreak is not None:
        better = better | ((values == target_value[:, None]) & (tiebreak > target_tiebreak[:, None]))
    counted = unique & (keys != target_key[:, None]) & better
    return 1 + counted.sum(dim=1)


@dataclass
class Diagnostics:
    """Per sample (B,): both ranks, whether each diagnostic passes, and the gate."""

    d_pol: torch.Tensor
    d_rew: torch.Tensor
    pass_pol: torch.Tensor
    pass_rew: torch.Tensor
    admitted: torch.Tensor

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({k: v.cpu().numpy() for k, v in vars(self).items()})


def gate(d_pol: torch.Tensor, d_rew: torch.Tensor, k_pol: int, k_rew: int) -> Diagnostics:
    """The one place the thresholds apply: pass_pol = d_pol > k_pol, pass_rew = d_rew ≤ k_rew,
    admitted (c) = both."""
    pass_pol, pass_rew = d_pol > k_pol, d_rew <= k_rew
    return Diagnostics(d_pol, d_rew, pass_pol, pass_rew, pass_pol & pass_rew)


def diagnose(ro: Rollouts, logp: torch.Tensor, vocab_size: int, k_pol: int, k_rew: int) -> Diagnostics:
    """The diagnostics of a rollout batch; `logp`: token log-probabilities (B, 1 + G, L) of
    `ro.seqs` under the policy that drew the rollouts."""
    keys = sequence_keys(ro.seqs, vocab_size)
    seq_logp = logp.sum(dim=-1)
    d_pol = rank_of_target(keys[:, 0], seq_logp[:, 0], keys[:, 1:], seq_logp[:, 1:])
    d_rew = rank_of_target(keys[:, 0], ro.target_reward, keys[:, 1:], ro.rewards, ro.target_key, ro.keys)
    return gate(d_pol, d_rew, k_pol, k_rew)


@torch.no_grad()
def sample_diagnostics(model, encoder: HistoryEncoder, samples: pd.DataFrame, trie: SidTrie, reward_model: RewardModel,
                       rollout_params: RolloutParams, k_pol: int, k_rew: int, seed: int, batch_size: int,
                       device: torch.device, gate_reward: RewardModel | None = None) -> pd.DataFrame:
    """d_pol, d_rew, each pass and the gate of every sample under `model` (e.g. the SFT policy
    on the test split: the strata of the report), with the RL stage's rollout settings.
    `gate_reward` (e.g. the controlled study's oracle): also its d_rew, pass_rew and gate on the
    same rollouts, columns suffixed `_gate`."""
    model.eval()
    trie = trie.to(device)
    histories, users, targets = samples["history"].to_list(), samples["user_id"].to_numpy(), samples["target"].to_numpy()
    out = []
    for lo in range(0, len(samples), batch_size):
        sl = slice(lo, lo + batch_size)
        x, mask = (t.to(device) for t in encoder(histories[sl], users[sl]))
        ro = rollout(model, x, mask, encoder.targets(targets[sl]).to(device), targets[sl], histories[sl], trie,
                     reward_model, rollout_params, rollout_generator(seed, lo, device), users[sl])
        logp = sequence_logprobs(model, encode(model, x, mask), mask, ro.seqs)
        frame = diagnose(ro, logp, encoder.layout.vocab_size, k_pol, k_rew).frame().assign(user_id=users[sl])
        if gate_reward is not None:
            gate = diagnose(rescore(ro, targets[sl], histories[sl], gate_reward, users[sl]), logp,
                            encoder.layout.vocab_size, k_pol, k_rew).frame()
            frame = frame.assign(**{f"{c}_gate": gate[c] for c in GATE_COLUMNS})
        out.append(frame)
    df = pd.concat(out, ignore_index=True)
    gated = [f"{c}_gate" for c in GATE_COLUMNS] if gate_reward is not None else []
    return df[["user_id", "d_pol", "d_rew", "pass_pol", "pass_rew", "admitted", *gated]]
