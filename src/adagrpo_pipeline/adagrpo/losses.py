"""The pieces of the AdaGRPO objective (DESIGN section 4), batched tensors in, tensors out.

Shapes: B samples, G rollouts per sample, L tokens per item.
"""

from __future__ import annotations

import torch

from .config import Variant


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """A_i = (r_i − mean(r)) / (std(r) + ε) within each group (last dim); population std, so a
    group's advantages have zero mean and (up to ε) unit std, and are 0 when rewards are equal."""
    mean = rewards.mean(dim=-1, keepdim=True)
    std = rewards.std(dim=-1, unbiased=False, keepdim=True)
    return (rewards - mean) / (std + eps)


def clipped_objective(logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, clip_eps: float) -> torch.Tensor:
    """Token-level min(ρA, clip(ρ, 1−ε, 1+ε)A), ρ = π_θ/π_old per token: (B, G, L)."""
    ratio = torch.exp(logp - logp_old)
    a = adv.unsqueeze(-1)
    return torch.minimum(ratio * a, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * a)


def k3_kl(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(π_θ‖π_ref) per token on samples from π_θ: r − log r − 1 with
    r = π_ref/π_θ; ≥ 0, and 0 where the two log-probabilities are equal."""
    d = logp_ref - logp
    return torch.exp(d) - d - 1.0


def grpo_loss_per_sample(logp: torch.Tensor, logp_old: torch.Tensor, logp_ref: torch.Tensor, adv: torch.Tensor,
                         clip_eps: float, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """L_GRPO of each sample (B,): −(clipped objective averaged over tokens and candidates)
    + β·(k3 KL averaged over tokens and candidates); and the KL term alone (B,)."""
    kl = k3_kl(logp, logp_ref).mean(dim=(1, 2))
    return -clipped_objective(logp, logp_old, adv, clip_eps).mean(dim=(1, 2)) + beta * kl, kl


def sequence_keys(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """One int64 per token sequence (..., L) -> (...): equal keys <=> equal sequences."""
    key = torch.zeros(tokens.shape[:-1], dtype=torch.long, device=tokens.device)
    for level in range(tokens.shape[-1]):
        key = key * vocab_size + tokens[..., level].long()
    return key


def rank_of_target(target_key: torch.Tensor, target_value: torch.Tensor, keys: torch.Tensor,
                   values: torch.Tensor) -> torch.Tensor:
    """Rank (1 = best) of the target in C = unique({target} ∪ candidates), by `values`
    (higher = better): 1 + the number of distinct candidate sequences other than the target
    whose value is strictly higher. target_*: (B,), keys/values: (B, G)."""
    order = torch.sort(keys, dim=1, stable=True)
    sorted_keys = order.values
    first = torch.ones_like(sorted_keys, dtype=torch.bool)
    first[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    unique = torch.zeros_like(first).scatter(1, order.indices, first)  # first occurrence of each sequence
    counted = unique & (keys != target_key[:, None]) & (values > target_value[:, None])
    return 1 + counted.sum(dim=1)


def gate(d_pol: torch.Tensor, d_rew: torch.Tensor, k_pol: int, k_rew: int) -> torch.Tensor:
    """c = 1[d_pol > k_pol] · 1[d_rew ≤ k_rew]: the policy is uncertain about y* and the
    ranker can tell y* from the rollouts."""
    return (d_pol > k_pol) & (d_rew <= k_rew)


def variant_loss(variant: Variant, nll: torch.Tensor, grpo: torch.Tensor, c: torch.Tensor, lam: float) -> torch.Tensor:
    """Scalar loss of a batch: w_nll · mean(NLL) + w_grpo · Σ c·L_GRPO / B, with c ≡ 1 unless
    the variant is gated (see `Variant.weights`)."""
    w_nll, w_grpo, gated = variant.weights(lam)
    weight = c.to(grpo.dtype) if gated else torch.ones_like(grpo)
    loss = w_nll * nll.mean()
    if w_grpo != 0.0:
        loss = loss + w_grpo * (weight * grpo).sum() / grpo.shape[0]
    return loss
