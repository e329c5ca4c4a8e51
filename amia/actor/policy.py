"""Mode-1 (Sec. 3.1.1, 3.1.3): a reactive policy ``a = A(s, c)`` compiled from Mode-2's optimal actions.

The policy is trained to minimise ``D(a_opt, A(s))`` (squared error) on the states the agent actually visits,
labelled with the actions Mode-2 planned there (``fit_policy``). It then acts alone (Mode-1, one forward pass
per action) or proposes the initial action sequence of Mode-2 by rolling itself through the predictor:
``a~[t] = A(s~[t])``, ``s~[t+1] = Pred(s~[t], a~[t])`` (``policy_rollout``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from amia.regression import fit_regression
from amia.world_model import mlp


@dataclass
class PolicyConfig:
    """MLP width and depth of the policy, and how it is fitted to Mode-2's actions."""

    hidden: int = 256
    layers: int = 3
    steps: int = 3000
    batch_size: int = 512
    lr: float = 1e-3


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


def fit_policy(policy: Policy, states: torch.Tensor, contexts: torch.Tensor, actions: torch.Tensor,
               seed: int = 0, progress=None) -> list[float]:
    """Regress ``A(s, c)`` onto Mode-2's actions (``(N, D)``, ``(N, K)``, ``(N, A)``) with Adam; returns the losses."""
    cfg = policy.cfg
    n = states.shape[0]
    if not (contexts.shape[0] == actions.shape[0] == n) or actions.shape[1] != policy.action_dim:
        raise ValueError(f"policy data: states {tuple(states.shape)}, contexts {tuple(contexts.shape)} and actions "
                         f"{tuple(actions.shape)} must share their first size, actions ending in {policy.action_dim}")
    return fit_regression(policy, (states, contexts), actions, cfg.steps, cfg.batch_size, cfg.lr, seed, progress)
