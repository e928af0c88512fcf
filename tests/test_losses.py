"""Losses against direct computations."""

from __future__ import annotations

import math

import pytest
import torch

from jepa_pipe.losses import info_nce, info_nce_scores, token_loss


def test_cosine_hand_cases():
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    assert token_loss(x, x, "cosine").item() == pytest.approx(0.0)
    assert token_loss(x, -x, "cosine").item() == pytest.approx(2.0)
    y = torch.tensor([[[0.0, 1.0], [3.0, 0.0]]])  # both orthogonal
    assert token_loss(x, y, "cosine").item() == pytest.approx(1.0)


def test_l1_and_mse_are_elementwise_means():
    p = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    t = torch.tensor([[[0.0, 0.0], [3.0, 8.0]]])
    assert token_loss(p, t, "l1").item() == pytest.approx((1 + 2 + 0 + 4) / 4)
    assert token_loss(p, t, "mse").item() == pytest.approx((1 + 4 + 0 + 16) / 4)


def test_target_layernorm_normalises_each_token():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(2, 3, 8, generator=g) * 5 + 3
    normed = (t - t.mean(-1, keepdim=True)) / torch.sqrt(
        t.var(-1, unbiased=False, keepdim=True) + 1e-5
    )
    assert token_loss(normed, t, "mse", target_layernorm=True).item() == pytest.approx(
        0.0, abs=1e-10
    )


def test_targets_get_no_gradient_and_shapes_must_match():
    p = torch.randn(2, 3, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, requires_grad=True)
    token_loss(p, t, "cosine").backward()
    assert p.grad is not None and t.grad is None
    with pytest.raises(ValueError, match=r"prediction \(2, 3, 4\) and target \(2, 3, 5\)"):
        token_loss(p, torch.randn(2, 3, 5), "l1")
    with pytest.raises(ValueError, match="unknown token loss 'huber'"):
        token_loss(p, t, "huber")


def test_info_nce_matches_a_direct_computation():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    temp = 0.07
    sim = [
        [float(torch.nn.functional.cosine_similarity(a[i], b[j], dim=0)) / temp for j in range(5)]
        for i in range(5)
    ]
    a2b = -sum(sim[i][i] - math.log(sum(math.exp(s) for s in sim[i])) for i in range(5)) / 5
    b2a = (
        -sum(sim[i][i] - math.log(sum(math.exp(sim[j][i]) for j in range(5))) for i in range(5)) / 5
    )
    assert info_nce(a, b, temp).item() == pytest.approx((a2b + b2a) / 2, rel=1e-5)
    # perfectly aligned, well separated pairs give a loss near zero
    eye = torch.eye(5) * 10
    assert info_nce(eye, eye, temp).item() < 1e-3


def test_info_nce_scores_with_extra_negative_columns_matches_a_direct_computation():
    # rows: each query over all 5 columns (3 positives' windows + 2 hard negatives);
    # columns: each of the first 3 windows over the 3 queries
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 5, generator=g) * 4
    s = logits.tolist()
    rows = -sum(s[i][i] - math.log(sum(math.exp(x) for x in s[i])) for i in range(3)) / 3
    cols = -sum(s[k][k] - math.log(sum(math.exp(s[i][k]) for i in range(3))) for k in range(3)) / 3
    assert info_nce_scores(logits).item() == pytest.approx((rows + cols) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="fewer columns than rows"):
        info_nce_scores(logits.T)
