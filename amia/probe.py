"""Linear probes: read true quantities (the agent's position) from frozen states, to judge a representation."""

from __future__ import annotations

import torch


class LinearProbe:
    """Least-squares map ``y = [s, 1] @ W`` from states ``(N, D)`` to targets ``(N, K)`` (small ridge)."""

    def __init__(self, weight: torch.Tensor):
        self.weight = weight

    @classmethod
    def fit(cls, states: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-4) -> "LinearProbe":
        x = torch.cat([states.double(), torch.ones(states.shape[0], 1, dtype=torch.float64, device=states.device)], 1)
        gram = x.T @ x + ridge * x.shape[0] * torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
        return cls(torch.linalg.solve(gram, x.T @ targets.double()))

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        flat = states.reshape(-1, states.shape[-1]).double()
        out = flat @ self.weight[:-1] + self.weight[-1]
        return out.reshape(*states.shape[:-1], self.weight.shape[1]).to(states.dtype)


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Coefficient of determination averaged over target columns (``(N, K)`` each)."""
    pred, target = pred.double(), target.double()
    sse = (pred - target).pow(2).sum(0)
    sst = (target - target.mean(0)).pow(2).sum(0).clamp_min(1e-12)
    return float((1 - sse / sst).mean())
