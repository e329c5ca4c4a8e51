"""World model (Sec. 3, 4.4): the action-conditioned predictor ``s[t+1] = Pred(s[t], a[t], z[t])`` and rollout."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from amia.infra.validate import at_least


@dataclass
class PredictorConfig:
    """A residual MLP on ``[s, a, z]``; ``latent_dim`` 0 means a deterministic predictor (no ``z``)."""

    hidden: int = 512
    layers: int = 2
    latent_dim: int = 0

    def __post_init__(self):
        at_least(self, 1, "hidden", "layers")
        at_least(self, 0, "latent_dim")


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with GELU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class Predictor(nn.Module):
    """``Pred(s, a, z) = s + f([s, a, z])`` on states ``(B, D)``, actions ``(B, A)`` and latents ``(B, Z)``."""

    def __init__(self, cfg: PredictorConfig, state_dim: int, action_dim: int):
        super().__init__()
        self.cfg, self.state_dim, self.action_dim = cfg, state_dim, action_dim
        self.net = mlp([state_dim + action_dim + cfg.latent_dim] + [cfg.hidden] * cfg.layers + [state_dim])

    def forward(self, s: torch.Tensor, a: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        parts = [s, a]
        if self.cfg.latent_dim:
            parts.append(z if z is not None else s.new_zeros(*s.shape[:-1], self.cfg.latent_dim))
        return s + self.net(torch.cat(parts, dim=-1))

    def rollout(self, s0: torch.Tensor, actions: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Open-loop predictions ``(B, T, D)`` of states 1..T from ``s0 (B, D)`` and ``actions (B, T, A)``."""
        if actions.shape[-1] != self.action_dim or actions.shape[0] != s0.shape[0]:
            raise ValueError(f"actions should have shape ({s0.shape[0]}, T, {self.action_dim}), got {tuple(actions.shape)}")
        out, s = [], s0
        for t in range(actions.shape[1]):
            s = self(s, actions[:, t], None if z is None else z[:, t])
            out.append(s)
        return torch.stack(out, dim=1)
