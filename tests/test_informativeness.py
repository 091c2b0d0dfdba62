"""The reward-informativeness figures on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adagrpo_pipeline.adagrpo.informativeness import _distinct, _pairwise_auc, _random_draw_std


def test_pairwise_auc_counts_rollouts_below_the_target_ties_half() -> None:
    target = torch.tensor([0.5, 0.5, 0.5])
    values = torch.tensor([[0.1, 0.9, 0.5], [0.1, 0.2, 0.3], [0.9, 0.9, 0.9]])
    use = torch.tensor([[True, True, True], [True, False, True], [False, False, False]])
    zeros = torch.zeros(3)
    auc = _pairwise_auc(target, values, zeros, torch.zeros_like(values), use)
    assert auc[0] == pytest.approx((1 + 0 + 0.5) / 3) and auc[1] == 1.0 and np.isnan(auc[2])
    # a tie in value is broken by the tie-break key
    auc = _pairwise_auc(target[:1], values[:1], torch.tensor([1.0]), torch.tensor([[0.0, 0.0, 2.0]]), use[:1])
    assert auc[0] == pytest.approx(1 / 3)


def test_distinct_marks_first_occurrences() -> None:
    assert _distinct(torch.tensor([[3, 1, 3, -1, -1]])).tolist() == [[True, True, False, True, False]]


def test_random_pass_rate_spread_is_the_binomial_one() -> None:
    p = np.full(400, 0.25)
    assert _random_draw_std(p) == pytest.approx(np.sqrt(0.25 * 0.75 / 400))
    assert _random_draw_std(np.array([0.0, 1.0])) == 0.0
