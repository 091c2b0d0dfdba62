"""Is the reward informative where AdaGRPO uses it? (docs/architecture.md, "The algorithm")

Measured before any RL, on leave-one-out samples (the valid split) with the starting policy's
own rollouts (the RL stage's rollout settings, seeded):

- `auc_target_vs_rollouts`: per sample, the share of its distinct valid rollouts (≠ y*) that the
  reward ranks below y* (ties ½), as RL sees it (seen items at their fixed reward, ranks by the
  raw score); averaged over samples, with a bootstrap CI over samples. 0.5 = the reward cannot
  tell the true item from the policy's guesses;
- `auc_target_vs_unseen_rollouts`: the same over rollouts that are not history items, by the
  ranker's raw score: the ranker's own discrimination where no rule decides;
- `pass_rate_reward` vs `pass_rate_random_*`: the share of samples whose reward diagnostic
  passes (d_rew ≤ k_rew) with this reward and with a reward that knows nothing (i.i.d. uniform
  per candidate, the same fixed rewards for invalid and seen candidates), over `random_draws`
  draws (mean and std);
- `spearman_reward_popularity`: within each sample's ranker-scored rollouts, the rank
  correlation of raw score and item popularity, averaged over samples (> 0: it prefers popular
  items, < 0: it penalises them);
- `history_rollout_share`, `reward_history_items`, `reward_other_items`: how many valid
  rollouts are history items, and the calibrated ranker reward of those and of the others
  (before the seen-item rule);
- `retriever_*` vs `popularity_*`: the ranker as a full-catalog retriever against popularity,
  HR@10 and NDCG@10 with history items removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from adagrpo_pipeline.metrics import retrieval_metrics
from adagrpo_pipeline.policy.model import HistoryEncoder
from adagrpo_pipeline.reward.calibration import apply_calibrator
from adagrpo_pipeline.reward.reward import RewardModel, seen_mask
from adagrpo_pipeline.sasrec.model import catalog_scores
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.stats import mean_ci

from .config import RolloutParams
from .diagnostics import rank_of_target, sequence_keys
from .rollouts import Rollouts, rollout, rollout_generator


@dataclass
class InformativenessSettings:
    k_rew: int
    seed: int
    batch_size: int = 256
    random_draws: int = 50
    resamples: int = 10_000


def _pairwise_auc(target: torch.Tensor, values: torch.Tensor, target_tb: torch.Tensor, tiebreak: torch.Tensor,
                  use: torch.Tensor) -> np.ndarray:
    """Per row: mean over `use` columns of [target better] + ½[equal], by (value, tiebreak); NaN
    for rows without a usable column."""
    t, tt = target[:, None], target_tb[:, None]
    above = (t > values) | ((t == values) & (tt > tiebreak))
    tie = (t == values) & (tt == tiebreak)
    score = (above.float() + 0.5 * tie.float()) * use
    n = use.sum(dim=1)
    out = score.sum(dim=1) / n.clamp(min=1)
    return torch.where(n > 0, out, torch.full_like(out, float("nan"))).cpu().numpy()


def _distinct(items: torch.Tensor) -> torch.Tensor:
    """(B, G) True at the first occurrence of each item id in its row."""
    order = torch.sort(items, dim=1, stable=True)
    first = torch.ones_like(items, dtype=torch.bool)
    first[:, 1:] = order.values[:, 1:] != order.values[:, :-1]
    return torch.zeros_like(first).scatter(1, order.indices, first)


@dataclass
class _Tally:
    """What the batches add up: one row per sample, the per-sample Spearman correlations and the
    calibrated rewards of history and other valid rollouts."""

    rows: list[pd.DataFrame] = field(default_factory=list)
    rho: list[float] = field(default_factory=list)
    hist_r: list[torch.Tensor] = field(default_factory=list)
    other_r: list[torch.Tensor] = field(default_factory=list)


@torch.no_grad()
def reward_informativeness(model, encoder: HistoryEncoder, samples: pd.DataFrame, trie: SidTrie,
                           reward_model: RewardModel, rollout_params: RolloutParams, popularity: np.ndarray,
                           seen: list[set[int]], s: InformativenessSettings,
                           device: torch.device) -> tuple[dict[str, float], pd.DataFrame]:
    """The figures of the module docstring and one row per sample (user_id, auc, auc_unseen,
    d_rew, pass_rew, random_pass_rate)."""
    model.eval()
    trie = trie.to(device)
    histories, users = samples["history"].to_list(), samples["user_id"].to_numpy()
    targets = np.array(samples["target"], dtype=np.int64)
    pop = torch.as_tensor(np.asarray(popularity, dtype=np.float64))
    rng = torch.Generator(device="cpu").manual_seed(int(s.seed))
    tally = _Tally()
    for lo in range(0, len(samples), s.batch_size):
        sl = slice(lo, lo + s.batch_size)
        h = histories[sl]
        x, mask = (t.to(device) for t in encoder(h, users[sl]))
        ro = rollout(model, x, mask, encoder.targets(targets[sl]).to(device), targets[sl], h, trie, reward_model,
                     rollout_params, rollout_generator(s.seed, lo, device), users[sl])
        _measure_batch(ro, h, targets[sl], users[sl], encoder.layout.vocab_size, reward_model, pop, rng, s, tally)
    per_sample = pd.concat(tally.rows, ignore_index=True)
    figures: dict[str, float] = {"samples": float(len(per_sample)), "rollouts_per_sample": float(rollout_params.group_size)}
    figures.update(_sample_figures(per_sample, tally, s))
    scores = catalog_scores(reward_model.ranker, samples["history"], reward_model.batch_size, users)
    ranker_m = retrieval_metrics(scores, targets, seen, [10])
    pop_m = retrieval_metrics(pop.float()[None, :].expand(len(samples), -1), targets, seen, [10])
    for prefix, m in (("retriever", ranker_m), ("popularity", pop_m)):
        figures.update({f"{prefix}_hr@10_filtered": m["hr@10_filtered"], f"{prefix}_ndcg@10_filtered": m["ndcg@10_filtered"]})
    return figures, per_sample


def _measure_batch(ro: Rollouts, h: list, targets: np.ndarray, users: np.ndarray, vocab_size: int,
                   reward_model: RewardModel, pop: torch.Tensor, rng: torch.Generator, s: InformativenessSettings,
                   tally: _Tally) -> None:
    """One batch's rollouts measured into `tally`: the rows of its samples, the Spearman
    correlations of its samples' ranker-scored rollouts, the calibrated rewards of its history
    and other valid rollouts."""
    items = ro.items.cpu()
    valid = items >= 0
    not_target = items != torch.as_tensor(targets)[:, None]
    in_hist = seen_mask(h, items) & valid
    distinct = _distinct(items) & valid & not_target
    keys, rewards, raw, fixed = ro.keys.cpu(), ro.rewards.cpu(), ro.raw.cpu(), ro.fixed.cpu()
    t_key, t_reward, t_raw, t_fixed = ro.target_key.cpu(), ro.target_reward.cpu(), ro.target_raw.cpu(), ro.target_fixed.cpu()
    auc = _pairwise_auc(t_reward, rewards, t_key, keys, distinct)
    auc_unseen = _pairwise_auc(t_raw, raw, torch.zeros_like(t_raw), torch.zeros_like(raw), distinct & ~in_hist)
    seq_keys = sequence_keys(ro.seqs.cpu(), vocab_size)
    d_rew = rank_of_target(seq_keys[:, 0], t_reward, seq_keys[:, 1:], rewards, t_key, keys)
    random_pass = torch.zeros(len(items))
    for _ in range(s.random_draws):
        r = torch.where(fixed, rewards, torch.rand(rewards.shape, generator=rng))
        tr = torch.where(t_fixed, t_reward, torch.rand(t_reward.shape, generator=rng))
        random_pass += (rank_of_target(seq_keys[:, 0], tr, seq_keys[:, 1:], r) <= s.k_rew).float()
    tally.rho.extend(_popularity_rho(items, raw, distinct & ~fixed, pop))
    calibrated = apply_calibrator(reward_model.calibrator, raw)
    tally.hist_r.append(calibrated[in_hist])
    tally.other_r.append(calibrated[valid & ~in_hist])
    tally.rows.append(pd.DataFrame({"user_id": users, "auc": auc, "auc_unseen": auc_unseen, "d_rew": d_rew.numpy(),
                                    "pass_rew": (d_rew <= s.k_rew).numpy(),
                                    "random_pass_rate": (random_pass / s.random_draws).numpy(),
                                    "valid_rollouts": valid.sum(dim=1).numpy(), "history_rollouts": in_hist.sum(dim=1).numpy()}))


def _popularity_rho(items: torch.Tensor, raw: torch.Tensor, scored: torch.Tensor, pop: torch.Tensor) -> list[float]:
    """Per sample with at least 3 `scored` rollouts and more than one distinct popularity and
    raw score among them: the Spearman correlation of raw score and popularity."""
    rho = []
    for row in range(len(items)):
        cols = scored[row].nonzero().flatten()
        if len(cols) >= 3 and pop[items[row, cols]].unique().numel() > 1 and raw[row, cols].unique().numel() > 1:
            rho.append(spearmanr(raw[row, cols].numpy(), pop[items[row, cols]].numpy()).statistic)
    return rho


def _sample_figures(per_sample: pd.DataFrame, tally: _Tally, s: InformativenessSettings) -> dict[str, float]:
    """The AUCs and the pass rate with their bootstrap CIs, the random reward's pass rate, the
    popularity correlation and the history rollouts' share and rewards."""
    hist_r, other_r = torch.cat(tally.hist_r), torch.cat(tally.other_r)
    figures: dict[str, float] = {}
    for name, col in (("auc_target_vs_rollouts", "auc"), ("auc_target_vs_unseen_rollouts", "auc_unseen"),
                      ("pass_rate_reward", "pass_rew")):
        mean, low, high = mean_ci(per_sample[col].to_numpy(np.float64), s.resamples, s.seed)
        figures.update({name: mean, f"{name}_ci_low": low, f"{name}_ci_high": high})
    draws = _random_draw_std(per_sample["random_pass_rate"].to_numpy())
    rho = tally.rho
    figures.update({"pass_rate_random_mean": float(per_sample["random_pass_rate"].mean()), "pass_rate_random_std": draws,
                    "spearman_reward_popularity": float(np.nanmean(rho)) if rho else float("nan"),
                    "history_rollout_share": float(per_sample["history_rollouts"].sum()
                                                   / max(per_sample["valid_rollouts"].sum(), 1)),
                    "reward_history_items": float(hist_r.mean()) if len(hist_r) else float("nan"),
                    "reward_other_items": float(other_r.mean()) if len(other_r) else float("nan")})
    return figures


def _random_draw_std(per_sample_rates: np.ndarray) -> float:
    """Std over draws of the random reward's pass rate, from the per-sample pass frequencies:
    each draw's rate is a mean of independent Bernoulli(p_i), so its variance is Σ p_i(1 − p_i) / n²
    (the per-sample p_i are estimated from the draws)."""
    p = np.asarray(per_sample_rates, dtype=np.float64)
    return float(np.sqrt(np.sum(p * (1 - p))) / len(p)) if len(p) else float("nan")
