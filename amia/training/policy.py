"""Compiling Mode-2 into the Mode-1 policy (Sec. 3.1.3), on the states the agent actually visits.

- ``fit_policy``: minimise ``D(a_opt, A(s))`` (squared error) to the actions Mode-2 planned there (labels);
- ``fit_policy_to_energy``: amortised Mode-2. Mode-2 finds, per state, the actions that minimise the energy
  ``F`` of their roll-out through the world model; the policy is trained to minimise that same energy of
  *its own* roll-out over ``H`` steps, by gradient through the frozen predictor and cost, averaged over states
  and goals. No label is needed, so the policy does not inherit the noise of Mode-2's weakly determined first
  action; with the critic scoring the roll-out's end (Sec. 3.3), a short ``H`` still sees beyond it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from amia.infra.validate import at_least, positive, within
from amia.models.policy import Policy
from amia.training.fit import fit_regression, minimise


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
        at_least(self, 1, "horizon", "steps", "batch_size")
        at_least(self, 0, "final_weight", "critic_weight")
        positive(self, "lr")
        within(self, "hindsight_goals", 0, 1)


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


__all__ = ["AmortiseConfig", "fit_policy", "fit_policy_to_energy"]
