"""Regularisers, linear probes and the effective rank, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from amia.eval.diagnostics import effective_rank
from amia.models import regularizers as R
from amia.models.probe import LinearProbe, r2_score


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


# ----------------------------------------------------------------------------------------------- VICReg terms


def test_variance_hinge_by_hand():
    x = t([[0.0, 0.0], [2.0, 0.0]])
    # column 0: unbiased variance ((0-1)^2 + (2-1)^2) / 1 = 2 -> std sqrt(2 + 1e-4) > 1 -> no penalty
    # column 1: variance 0 -> std sqrt(1e-4) = 0.01 -> penalty 0.99; mean over the 2 columns
    expected = (max(0.0, 1 - math.sqrt(2 + 1e-4)) + (1 - math.sqrt(1e-4))) / 2
    assert float(R.variance_hinge(x)) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.495)
    # a higher target: both columns pay
    expected3 = ((3 - math.sqrt(2 + 1e-4)) + (3 - 0.01)) / 2
    assert float(R.variance_hinge(x, target=3.0)) == pytest.approx(expected3, abs=1e-12)
    # eps matters only in the square root
    assert float(R.variance_hinge(x, eps=0.25)) == pytest.approx((1 - 0.5) / 2, abs=1e-12)


def test_variance_hinge_gradient_pushes_spread_up():
    x = t([[0.0, 0.1], [0.2, -0.1], [0.1, 0.0]]).requires_grad_()
    R.variance_hinge(x).backward()
    # increasing the spread lowers the loss: gradient points towards the column mean
    centred = (x - x.mean(0)).detach()
    assert float((x.grad * centred).sum()) < 0


def test_covariance_penalty_by_hand():
    x = t([[1.0, 2.0], [3.0, 0.0], [5.0, 7.0]])
    # means (3, 3); centred rows (-2, -1), (0, -3), (2, 4); cov_01 = (2 + 0 + 8) / (3 - 1) = 5
    # off-diagonal squares: 2 * 25 = 50; divided by D = 2 -> 25
    assert float(R.covariance_penalty(x)) == pytest.approx(25.0, abs=1e-12)
    # uncorrelated columns: zero
    assert float(R.covariance_penalty(t([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]))) == pytest.approx(0.0, abs=1e-12)


def test_covariance_penalty_three_dims_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    cov = np.cov(x, rowvar=False)
    expected = (np.sum(cov**2) - np.sum(np.diag(cov) ** 2)) / 3
    assert float(R.covariance_penalty(t(x))) == pytest.approx(expected, rel=1e-12)


def test_temporal_smoothness_by_hand():
    s = t([[[0.0, 0.0], [1.0, 2.0], [3.0, 2.0]]])
    # differences (1, 2), (2, 0): squares 1, 4, 4, 0 -> mean 9 / 4
    assert float(R.temporal_smoothness(s)) == pytest.approx(2.25, abs=1e-12)
    assert float(R.temporal_smoothness(s.repeat(3, 1, 1))) == pytest.approx(2.25, abs=1e-12)
    assert float(R.temporal_smoothness(torch.ones(2, 5, 3))) == 0.0


# ----------------------------------------------------------------------------------------------- SIGReg


def trapezoid_constant(knots=17, t_max=5.0) -> float:
    """sigreg / N for an all-zero batch, integrated exactly as the code does, in numpy."""
    tt = np.linspace(0.0, t_max, knots)
    g = np.exp(-0.5 * tt**2)
    err = (1 - g) ** 2 * g
    h = tt[1] - tt[0]
    return float(2 * h * (err.sum() - 0.5 * (err[0] + err[-1])))


def directions(d, m, seed=0):
    return R.random_directions(d, m, torch.Generator().manual_seed(seed)).double()


def test_sigreg_of_a_constant_batch():
    n = 100
    x = torch.zeros(n, 4, dtype=torch.float64)
    value = float(R.sigreg(x, directions(4, 16)))
    # closed form 2 * int_0^inf (1 - g)^2 g dt = sqrt(2 pi) - 2 sqrt(pi) + sqrt(2 pi / 3) for g = exp(-t^2/2)
    closed = math.sqrt(2 * math.pi) - 2 * math.sqrt(math.pi) + math.sqrt(2 * math.pi / 3)
    assert R.sigreg_of_constant() == pytest.approx(closed, rel=1e-12)
    assert value == pytest.approx(n * R.sigreg_of_constant(), rel=1e-2)
    assert value == pytest.approx(n * trapezoid_constant(), rel=1e-10)
    # a constant batch away from 0 is worse still: |exp(i t c) - g|^2 = 1 - 2 g cos(t c) + g^2 >= (1 - g)^2
    shifted = float(R.sigreg(torch.full((n, 4), 0.7, dtype=torch.float64), directions(4, 16)))
    assert shifted > value


def test_sigreg_knots_and_range():
    n = 10
    x = torch.zeros(n, 3, dtype=torch.float64)
    for knots, t_max in ((9, 5.0), (33, 4.0)):
        value = float(R.sigreg(x, directions(3, 5), knots=knots, t_max=t_max))
        assert value == pytest.approx(n * trapezoid_constant(knots, t_max), rel=1e-10)


def test_sigreg_prefers_a_standard_normal_batch():
    g = torch.Generator().manual_seed(0)
    n, d = 20000, 8
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    u = directions(d, 32, seed=1)
    normal = float(R.sigreg(x, u))
    collapsed = float(R.sigreg(torch.zeros(n, d, dtype=torch.float64), u))
    scaled = float(R.sigreg(5 * x, u))
    # N * |ecf - cf|^2 of a true sample has expectation (1 - exp(-t^2)) per t: about 1.06 after weighting
    assert normal < 3.0
    assert normal < 0.05 * collapsed and normal < 0.05 * scaled
    assert collapsed == pytest.approx(n * trapezoid_constant(), rel=1e-10)
    assert scaled > 0.5 * collapsed  # a 5x too wide batch is almost as bad as a collapsed one
    # the statistic scales with N for a fixed mismatch
    half = float(R.sigreg(5 * x[: n // 2], u))
    assert half == pytest.approx(scaled / 2, rel=0.05)


def test_sigreg_direction_norm_does_not_matter():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    u = directions(3, 4)
    assert float(R.sigreg(x, u)) == pytest.approx(float(R.sigreg(x, 7 * u)), rel=1e-12)


# ----------------------------------------------------------------------------------------------- probes


def test_linear_probe_recovers_a_linear_map():
    g = torch.Generator().manual_seed(0)
    states = torch.randn(2000, 6, generator=g)
    weight = torch.randn(6, 2, generator=g, dtype=torch.float64)
    bias = torch.tensor([3.0, -2.0], dtype=torch.float64)
    targets = states.double() @ weight + bias
    probe = LinearProbe.fit(states, targets)
    assert probe.weight.shape == (7, 2)
    torch.testing.assert_close(probe.weight[:-1], weight, atol=2e-3, rtol=0)
    torch.testing.assert_close(probe.weight[-1], bias, atol=2e-3, rtol=0)
    pred = probe(states)
    assert pred.dtype == states.dtype and pred.shape == (2000, 2)
    assert r2_score(pred, targets) > 1 - 1e-5
    # batched states keep their leading shape
    assert probe(states.reshape(20, 100, 6)).shape == (20, 100, 2)
    torch.testing.assert_close(probe(states.reshape(20, 100, 6)).reshape(2000, 2), pred)
    # without a ridge the fit is exact
    exact = LinearProbe.fit(states, targets, ridge=0.0)
    torch.testing.assert_close(exact.weight[:-1], weight, atol=1e-6, rtol=0)


def test_linear_probe_on_noise_scores_near_zero():
    g = torch.Generator().manual_seed(1)
    states, targets = torch.randn(4000, 4, generator=g), torch.randn(4000, 1, generator=g)
    probe = LinearProbe.fit(states[:2000], targets[:2000])
    assert abs(r2_score(probe(states[2000:]), targets[2000:])) < 0.02


def test_r2_score_by_hand():
    pred = t([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    target = t([[1.0, 1.0], [2.0, 2.0], [4.0, 3.0]])
    # column 0: mean 7/3, SST = (16 + 1 + 25) / 9 = 42/9, SSE = 1 -> 1 - 9/42
    # column 1: mean 2, SST = 2, SSE = 1 + 4 + 9 = 14 -> 1 - 7 = -6
    assert r2_score(pred, target) == pytest.approx(((1 - 9 / 42) + (1 - 14 / 2)) / 2, abs=1e-12)
    assert r2_score(target, target) == 1.0
    # predicting the mean scores 0
    assert r2_score(target.mean(0, keepdim=True).expand(3, 2), target) == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------------------------------------- effective rank


def test_effective_rank():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(500, 1, generator=g), torch.randn(1, 8, generator=g)
    assert effective_rank(u @ v) == pytest.approx(1.0, abs=1e-3)
    assert effective_rank(u @ v + 5.0) == pytest.approx(1.0, abs=1e-3)  # the mean is removed first
    iso = torch.randn(5000, 8, generator=g)
    assert 7.8 < effective_rank(iso) <= 8.0
    # two equal independent directions: 2; and the scale does not matter
    two = torch.cat([torch.randn(5000, 2, generator=g), torch.zeros(5000, 6)], 1)
    assert effective_rank(two) == pytest.approx(2.0, abs=0.05)
    assert effective_rank(100 * two) == pytest.approx(effective_rank(two), rel=1e-6)
    # singular values 3:1 -> p = (3/4, 1/4) -> exp(entropy)
    basis = torch.linalg.qr(torch.randn(8, 2, generator=g, dtype=torch.float64))[0]
    z = torch.linalg.qr(torch.randn(1000, 2, generator=g, dtype=torch.float64))[0]
    z = z - z.mean(0)
    z = torch.linalg.qr(z)[0]  # orthonormal and centred columns
    states = z @ torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64)) @ basis.T
    p = np.array([0.75, 0.25])
    assert effective_rank(states) == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-6)
    assert effective_rank(torch.zeros(10, 4)) == pytest.approx(1.0, abs=1e-6)  # fully collapsed: no nan
