"""The Mode-1 policy network (Sec. 3.1.1, 3.1.3): a reactive ``a = A(s, c)`` compiled from Mode-2
(``amia.training.policy``).

The policy acts alone (Mode-1, one forward pass per action) or proposes the initial action sequence of Mode-2
by rolling itself through the predictor: ``a~[t] = A(s~[t])``, ``s~[t+1] = Pred(s~[t], a~[t])``
(``policy_rollout``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from amia.infra.validate import at_least, positive
from amia.models.layers import mlp


@dataclass
class PolicyConfig:
    """MLP width and depth of the policy, and how it is fitted to Mode-2's actions."""

    hidden: int = 256
    layers: int = 3
    steps: int = 3000
    batch_size: int = 512
    lr: float = 1e-3

    def __post_init__(self):
        at_least(self, 1, "hidden", "layers", "steps", "batch_size")
        positive(self, "lr")


class Policy(nn.Module):
    """``A(s, c)``: state ``(B, D)`` and task context ``(B, K)`` (the goal's state) -> action ``(B, A)`` in the box."""

    def __init__(self, cfg: PolicyConfig, state_dim: int, context_dim: int, action_dim: int, bound: float):
        super().__init__()
        self.cfg, self.state_dim, self.context_dim, self.action_dim = cfg, state_dim, context_dim, action_dim
        self.bound = bound
        self.relative = context_dim == state_dim  # a goal state: also see the difference to it
        inputs = state_dim + context_dim + (state_dim if self.relative else 0)
        self.net = mlp([inputs] + [cfg.hidden] * cfg.layers + [action_dim])

    def forward(self, s: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        parts = [s, context, context - s] if self.relative else [s, context]
        return self.bound * torch.tanh(self.net(torch.cat(parts, dim=-1)))


@torch.no_grad()
def policy_rollout(policy: Policy, predictor, s0: torch.Tensor, context: torch.Tensor, horizon: int) -> torch.Tensor:
    """Initial plan ``(B, horizon, A)`` for Mode-2: the policy acting on the predictor's imagined states."""
    actions, s = [], s0
    for _ in range(horizon):
        a = policy(s, context)
        actions.append(a)
        s = predictor(s, a)
    return torch.stack(actions, dim=1)


__all__ = ["Policy", "PolicyConfig", "policy_rollout"]
