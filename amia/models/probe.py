"""Linear read-outs of true quantities (the agent's position) from frozen states: to judge a representation, and as
the frozen position read-out that the forbidden-region and keep-away cost terms see through (Sec. 3.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LinearProbe:
    """``y = [s, 1] @ weight``, ``weight (D+1, K)``, from states ``(..., D)`` to ``(..., K)``.

    Frozen: no parameters of its own, so gradients reach the states through it (a cost term) and nothing
    optimises it. ``fit`` solves a small ridge least-squares problem in double precision.
    """

    weight: torch.Tensor

    @classmethod
    def fit(cls, states: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-4) -> LinearProbe:
        """Least squares from states ``(N, D)`` to targets ``(N, K)``; ``ridge`` scales with ``N``."""
        x = torch.cat([states.double(), torch.ones(states.shape[0], 1, dtype=torch.float64, device=states.device)], 1)
        gram = x.T @ x + ridge * x.shape[0] * torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
        return cls(torch.linalg.solve(gram, x.T @ targets.double()))

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(states)
        return states @ w[:-1] + w[-1]


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Coefficient of determination averaged over target columns (``(N, K)`` each)."""
    pred, target = pred.double(), target.double()
    sse = (pred - target).pow(2).sum(0)
    sst = (target - target.mean(0)).pow(2).sum(0).clamp_min(1e-12)
    return float((1 - sse / sst).mean())


__all__ = ["LinearProbe", "r2_score"]
