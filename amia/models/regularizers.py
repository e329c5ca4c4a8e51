"""Anti-collapse regularisers of Sec. 4.5 (non-contrastive training of the JEPA).

Every function takes embeddings ``(N, D)`` (one batch, samples along the first axis) and returns a scalar.
"""

from __future__ import annotations

import math

import torch


def variance_hinge(x: torch.Tensor, target: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg variance term (Sec. 4.5.1): mean over dimensions of ``relu(target - std_d)``."""
    std = torch.sqrt(x.var(dim=0) + eps)
    return torch.relu(target - std).mean()


def covariance_penalty(x: torch.Tensor) -> torch.Tensor:
    """VICReg covariance term (Sec. 4.5.1): sum of squared off-diagonal covariances, divided by ``D``."""
    n, d = x.shape
    xc = x - x.mean(dim=0)
    cov = (xc.T @ xc) / (n - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


def temporal_smoothness(s: torch.Tensor) -> torch.Tensor:
    """Mean squared change between consecutive states ``(B, T, D)`` (PLDM's smoothness prior)."""
    return (s[:, 1:] - s[:, :-1]).pow(2).mean()


def sigreg(x: torch.Tensor, directions: torch.Tensor, knots: int = 17, t_max: float = 5.0) -> torch.Tensor:
    """SIGReg (LeJEPA): Epps-Pulley statistic of 1-D projections against a standard Gaussian.

    For each unit direction (columns of ``directions``, ``(D, M)``) the empirical characteristic function
    of the projected samples is compared with ``exp(-t^2/2)`` over ``t`` in ``[-t_max, t_max]``, weighted
    by ``exp(-t^2/2)``, integrated by the trapezoidal rule and scaled by ``N``; the result is the mean over
    directions. It is zero only when every projection looks standard normal.
    """
    n = x.shape[0]
    u = directions / directions.norm(dim=0, keepdim=True)
    proj = x @ u  # (N, M)
    t = torch.linspace(0.0, t_max, knots, device=x.device, dtype=x.dtype)  # symmetric: integrate [0, t_max] twice
    arg = proj[:, :, None] * t  # (N, M, K)
    re, im = torch.cos(arg).mean(dim=0), torch.sin(arg).mean(dim=0)
    gauss = torch.exp(-0.5 * t**2)
    err = ((re - gauss) ** 2 + im**2) * gauss
    return 2 * n * torch.trapezoid(err, t, dim=-1).mean()


def random_directions(dim: int, count: int, generator: torch.Generator, device=None) -> torch.Tensor:
    """``count`` random directions in ``R^dim`` as columns ``(dim, count)``, drawn from ``generator``."""
    return torch.randn(dim, count, generator=generator).to(device)


def sigreg_of_constant() -> float:
    """Closed form of ``sigreg / N`` for a batch of all-zero samples (used by tests as a hand check)."""
    return math.sqrt(2 * math.pi) - 2 * math.sqrt(math.pi) + math.sqrt(2 * math.pi / 3)
