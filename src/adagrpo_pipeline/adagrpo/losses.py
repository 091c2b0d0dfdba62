"""The pieces of the AdaGRPO objective (arXiv 2606.08480; docs/architecture.md, "The
algorithm"), batched tensors in, tensors out. The gate `c` comes from `diagnostics.gate`.

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


def sample_weights(variant: Variant, admitted: torch.Tensor, generator: torch.Generator | None = None,
                   share: float | None = None, span: slice | None = None, total: int | None = None) -> torch.Tensor:
    """Per-sample weight c of the GRPO term: the gate for `adagrpo` and `oracle_gate`; c ~ Bernoulli(p) for
    `random_gate` and the constant p for `mix_matched`, p = the admitted share of the batch
    (`share`: of the global batch when these samples are rows `span` of a batch of `total` split
    over processes; the Bernoulli draws are then those of the whole batch's rows); 1 otherwise."""
    a = admitted.float()
    p = float(a.mean()) if share is None else share
    if variant.kind in ("adagrpo", "oracle_gate"):
        return a
    if variant.kind == "random_gate":
        span = slice(0, len(a)) if span is None else span
        n = len(a) if total is None else total
        u = torch.rand(n, generator=generator, device=generator.device if generator is not None else a.device)[span]
        return (u.to(a.device) < p).float()
    if variant.kind == "mix_matched":
        return torch.full_like(a, p)
    return torch.ones_like(a)


def variant_loss(variant: Variant, nll: torch.Tensor, grpo: torch.Tensor, weight: torch.Tensor, lam: float) -> torch.Tensor:
    """Scalar loss of a batch: w_nll · mean(NLL) + w_grpo · Σ c·L_GRPO / B, with c = `weight`,
    the per-sample weights of `sample_weights` (see `Variant.weights`)."""
    w_nll, w_grpo = variant.weights(lam)
    weight = weight.to(grpo.dtype)
    loss = w_nll * nll.mean()
    if w_grpo != 0.0:
        loss = loss + w_grpo * (weight * grpo).sum() / grpo.shape[0]
    return loss
