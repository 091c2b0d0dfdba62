"""The AdaGRPO objective and its diagnostics, piece by piece (docs/architecture.md), asserting values."""

from __future__ import annotations

import pytest
import torch

from adagrpo_pipeline.adagrpo.config import Variant, variants
from adagrpo_pipeline.adagrpo.diagnostics import gate, rank_of_target, sequence_keys
from adagrpo_pipeline.adagrpo.losses import (
    clipped_objective,
    group_advantages,
    grpo_loss_per_sample,
    k3_kl,
    sample_weights,
    variant_loss,
)


def test_advantages_zero_mean_unit_std_and_zero_for_constant_groups() -> None:
    r = torch.tensor([[0.1, 0.5, 0.9, 0.3], [0.2, 0.2, 0.2, 0.2], [0.0, 1.0, 0.0, 0.0]])
    a = group_advantages(r, eps=1e-8)
    assert torch.allclose(a.mean(dim=1), torch.zeros(3), atol=1e-6)
    assert torch.allclose(a[[0, 2]].std(dim=1, unbiased=False), torch.ones(2), atol=1e-5)
    assert torch.equal(a[1], torch.zeros(4))
    assert a[0].argsort().tolist() == [0, 3, 1, 2]  # order of the rewards kept


@pytest.mark.parametrize("adv", [1.0, -1.0])
def test_clipping_stops_the_gradient_outside_the_trust_region_on_the_right_side(adv: float) -> None:
    eps = 0.2
    ratios = torch.tensor([0.5, 0.9, 1.1, 1.5])
    logp_old = torch.zeros(4)
    logp = torch.log(ratios).requires_grad_(True)
    a = torch.full((1, 4), adv)
    obj = clipped_objective(logp.view(1, 4, 1), logp_old.view(1, 4, 1), a.view(1, 4), eps)
    obj.sum().backward()
    grad = logp.grad
    # inside [0.8, 1.2]: d(ρA)/dlogp = ρA
    assert torch.allclose(grad[1:3], ratios[1:3] * adv)
    if adv > 0:  # A > 0: no gradient once ρ > 1 + ε, still pulled up when ρ < 1 − ε
        assert grad[3] == 0 and torch.isclose(grad[0], ratios[0] * adv)
    else:  # A < 0: no gradient once ρ < 1 − ε, still pushed down when ρ > 1 + ε
        assert grad[0] == 0 and torch.isclose(grad[3], ratios[3] * adv)


def test_k3_kl_nonnegative_and_zero_for_equal_policies() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, generator=g), torch.randn(1000, generator=g)
    assert (k3_kl(a, b) >= 0).all()
    assert torch.equal(k3_kl(a, a), torch.zeros(1000))
    # unbiased: E_{x~p}[k3] = KL(p||q) for two categorical distributions
    p, q = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.4, 0.4, 0.2])
    expected = (p * (p / q).log()).sum()
    assert torch.isclose((p * k3_kl(p.log(), q.log())).sum(), expected, atol=1e-6)


def test_rank_of_target_counts_distinct_better_candidates() -> None:
    keys = torch.tensor([[5, 5, 7, 9], [1, 2, 3, 4]])
    values = torch.tensor([[0.9, 0.9, 0.1, 0.8], [0.1, 0.2, 0.3, 0.4]])
    # row 0: y* key 7 value 0.5: better distinct = {5 (once, duplicated), 9} -> rank 3
    # row 1: y* = candidate 3 itself (key 3, value 0.3): better = {4} -> rank 2
    r = rank_of_target(torch.tensor([7, 3]), torch.tensor([0.5, 0.3]), keys, values)
    assert r.tolist() == [3, 2]
    assert sequence_keys(torch.tensor([[1, 2, 3], [3, 2, 1]]), 10).tolist() == [123, 321]


def test_equal_rewards_are_ranked_by_the_raw_score() -> None:
    """Isotonic calibration maps a range of raw scores to one reward: without the raw score as
    tie-break every tie would count for y* (d_rew 1); fixed rewards (key −inf) rank last."""
    keys = torch.tensor([[1, 2, 3]])
    rewards = torch.tensor([[0.2, 0.2, 0.0]])  # y* also 0.2
    raw = torch.tensor([[1.5, 0.5, float("-inf")]])
    plain = rank_of_target(torch.tensor([9]), torch.tensor([0.2]), keys, rewards)
    tied = rank_of_target(torch.tensor([9]), torch.tensor([0.2]), keys, rewards, torch.tensor([1.0]), raw)
    assert plain.tolist() == [1] and tied.tolist() == [2]  # candidate 1 (raw 1.5) is above y* (raw 1.0)


def test_gate_truth_table() -> None:
    d = gate(torch.tensor([1, 1, 3, 3]), torch.tensor([1, 5, 1, 5]), k_pol=1, k_rew=2)
    assert d.pass_pol.tolist() == [False, False, True, True] and d.pass_rew.tolist() == [True, False, True, False]
    assert d.admitted.tolist() == [False, False, True, False]
    assert gate(torch.tensor([2]), torch.tensor([2]), k_pol=1, k_rew=2).admitted.tolist() == [True]  # both bounds inclusive as specified
    assert gate(torch.tensor([1]), torch.tensor([3]), k_pol=0, k_rew=3).admitted.tolist() == [True]
    assert list(d.frame().columns) == ["d_pol", "d_rew", "pass_pol", "pass_rew", "admitted"]


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    b, n, length = 4, 3, 2
    logp = torch.randn(b, n, length, generator=g).clamp(max=-0.01).requires_grad_(True)
    old = (logp.detach() + 0.05 * torch.randn(b, n, length, generator=g)).clamp(max=-0.01)
    ref = (logp.detach() + 0.3 * torch.randn(b, n, length, generator=g)).clamp(max=-0.01)
    adv = group_advantages(torch.rand(b, n, generator=g))
    nll_src = torch.rand(b, generator=g).requires_grad_(True)
    return logp, old, ref, adv, nll_src


def test_a_sample_with_c_zero_contributes_exactly_zero_grpo_gradient() -> None:
    logp, old, ref, adv, nll_src = _batch()
    grpo, _ = grpo_loss_per_sample(logp, old, ref, adv, 0.2, 0.04)
    c = torch.tensor([True, False, True, False])
    variant_loss(Variant("adagrpo"), nll_src * 0, grpo, sample_weights(Variant("adagrpo"), c), lam=1.0).backward()
    assert torch.equal(logp.grad[1], torch.zeros_like(logp.grad[1])) and torch.equal(logp.grad[3], torch.zeros_like(logp.grad[3]))
    assert logp.grad[0].abs().sum() > 0 and logp.grad[2].abs().sum() > 0
    # the admitted samples get λ/B times their own L_GRPO gradient
    logp2 = logp.detach().clone().requires_grad_(True)
    g2, _ = grpo_loss_per_sample(logp2, old, ref, adv, 0.2, 0.04)
    (g2[0] / 4).backward()
    assert torch.allclose(logp.grad[0], logp2.grad[0])


def test_mix_0_gives_the_nll_only_gradient() -> None:
    logp, old, ref, adv, nll_src = _batch()
    nll = -(logp[:, 0].mean(-1)) + nll_src
    grpo, _ = grpo_loss_per_sample(logp, old, ref, adv, 0.2, 0.04)
    variant_loss(Variant("mix", 0.0), nll, grpo, torch.ones(4, dtype=torch.bool), 1.0).backward()
    mix_grad = logp.grad.clone()
    logp.grad = None
    nll2 = -(logp[:, 0].mean(-1)) + nll_src
    nll2.mean().backward()
    assert torch.equal(mix_grad, logp.grad)
    assert torch.equal(mix_grad[:, 1:], torch.zeros_like(mix_grad[:, 1:]))  # no gradient into the rollouts


def test_variant_weights_and_names() -> None:
    assert [v.name for v in variants([0.25, 0.5])] == ["sft_continue", "grpo", "mix_0p25", "mix_0p5", "mix_matched",
                                                        "random_gate", "adagrpo"]
    assert Variant("sft_continue").weights(2.0) == (1.0, 0.0)
    assert Variant("grpo").weights(2.0) == (0.0, 1.0)
    assert Variant("mix", 0.25).weights(2.0) == (0.75, 0.25)
    assert Variant("adagrpo").weights(2.0) == (1.0, 2.0)
    nll, grpo = torch.tensor([1.0, 3.0]), torch.tensor([10.0, 20.0])
    admitted = torch.tensor([False, True])

    def loss(v: Variant) -> float:
        return variant_loss(v, nll, grpo, sample_weights(v, admitted), 0.5).item()

    assert loss(Variant("adagrpo")) == pytest.approx(2.0 + 0.5 * 20.0 / 2)
    assert loss(Variant("grpo")) == pytest.approx(15.0)  # the gate is ignored
    assert loss(Variant("mix", 0.5)) == pytest.approx(0.5 * 2.0 + 0.5 * 15.0)
    assert loss(Variant("sft_continue")) == pytest.approx(2.0)
    assert loss(Variant("mix_matched")) == pytest.approx(2.0 + 0.5 * 0.5 * 30.0 / 2)  # p = 1/2 on every sample


def test_random_gate_admits_at_the_gates_rate_independently_of_it() -> None:
    admitted = torch.zeros(20_000, dtype=torch.bool)
    admitted[:6_000] = True  # the gate admits 30%, all at the front
    c = sample_weights(Variant("random_gate"), admitted, torch.Generator().manual_seed(0))
    assert set(c.unique().tolist()) <= {0.0, 1.0}
    assert c.mean().item() == pytest.approx(0.3, abs=0.01)  # the dose
    assert c[:6_000].mean().item() == pytest.approx(c[6_000:].mean().item(), abs=0.02)  # not the gate's choice
    again = sample_weights(Variant("random_gate"), admitted, torch.Generator().manual_seed(0))
    assert torch.equal(c, again)  # seeded
    assert sample_weights(Variant("random_gate"), torch.zeros(5, dtype=torch.bool)).sum() == 0
