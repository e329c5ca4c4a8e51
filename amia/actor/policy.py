"""Mode-1 (Sec. 3.1.1, 3.1.3): a reactive policy ``a = A(s, c)`` compiled from Mode-2.

Two ways to compile it, both on the states the agent actually visits:

- ``fit_policy``: minimise ``D(a_opt, A(s))`` (squared error) to the actions Mode-2 planned there (labels);
- ``fit_policy_to_energy``: amortised Mode-2. Mode-2 finds, per state, the actions that minimise the energy
  ``F`` of their roll-out through the world model; the policy is trained to minimise that same energy of
  *its own* roll-out, ``F(s, A) = C(Pred(s, A(s)), Pred(Pred(s, A(s)), A(...)), ...)`` over ``H`` steps, by
  gradient through the frozen predictor and cost, averaged over states and goals. No label is needed, so the
  policy does not inherit the noise of Mode-2's weakly determined first action; with the critic scoring the
  roll-out's end (Sec. 3.3), a short ``H`` still sees the way to a goal beyond it.

The policy then acts alone (Mode-1, one forward pass per action) or proposes the initial action sequence of
Mode-2 by rolling itself through the predictor: ``a~[t] = A(s~[t])``, ``s~[t+1] = Pred(s~[t], a~[t])``
(``policy_rollout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from amia.regression import fit_regression, minimise
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


@dataclass
class AmortiseConfig:
    """``fit_policy_to_energy``'s settings: the roll-out ``horizon`` and the cost (``final_weight`` of the goal
    distance on the last step, ``critic_weight`` of the critic on it; Mode-2's with a critic), the share of
    ``hindsight_goals`` (goals drawn among the visited states rather than the episodes' own), and Adam's
    ``steps``, ``batch_size``, ``lr`` (cosine schedule). ``enabled=False`` keeps the label-fitted policy."""

    enabled: bool = True
    horizon: int = 8
    final_weight: float = 30.0
    critic_weight: float = 0.3
    hindsight_goals: float = 0.5
    steps: int = 2000
    batch_size: int = 512
    lr: float = 1e-3

    def __post_init__(self):
        if self.horizon < 1 or self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"amortise.horizon, .steps and .batch_size must be >= 1, got {self.horizon}, "
                             f"{self.steps} and {self.batch_size}")
        if not 0 <= self.hindsight_goals <= 1:
            raise ValueError(f"amortise.hindsight_goals must be in [0, 1], got {self.hindsight_goals}")


def fit_policy_to_energy(policy: Policy, predictor: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                         make_cost: Callable[[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]],
                         states: torch.Tensor, goals: torch.Tensor, cfg: AmortiseConfig, seed: int = 0,
                         progress=None) -> list[float]:
    """Amortised Mode-2 (module docstring): minimise ``make_cost(g)(roll-out)`` of the policy's ``cfg.horizon``-step
    roll-out through ``predictor(s, a) -> s'`` (frozen: only the policy's parameters move) from visited
    ``states (N, D)`` towards ``goals (N, D)`` (their episodes' goals; a ``cfg.hindsight_goals`` share of each
    batch takes another visited state instead). ``make_cost(goal (B, D))`` returns the energy of states
    ``(B, H, D) -> (B,)``. Returns the mean energy of every step."""
    if goals.shape != states.shape:
        raise ValueError(f"amortise: goals {tuple(goals.shape)} must match states {tuple(states.shape)}")
    n = states.shape[0]

    def batch_loss(g: torch.Generator) -> torch.Tensor:
        idx = torch.randint(n, (min(cfg.batch_size, n),), generator=g)
        s, goal = states[idx], goals[idx].clone()
        other = torch.rand(len(idx), generator=g) < cfg.hindsight_goals
        goal[other] = states[torch.randint(n, (int(other.sum()),), generator=g)]
        path = []
        for _ in range(cfg.horizon):
            s = predictor(s, policy(s, goal))
            path.append(s)
        return make_cost(goal)(torch.stack(path, dim=1)).mean()

    return minimise(policy, batch_loss, cfg.steps, cfg.lr, seed, progress)
