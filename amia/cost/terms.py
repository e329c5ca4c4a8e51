"""Cost module (Sec. 3.2, 3.3): ``C(s) = sum_i u_i IC_i(s) + sum_j v_j TC_j(s)``.

Intrinsic terms ``IC_i`` are immutable: frozen dataclasses of fixed tensors (a goal state, a frozen position
probe, a region), with no parameters that any optimiser could change. The critic ``TC`` is the one trainable
part: it predicts the discounted intrinsic cost still to come from a state (Sec. 3.3) and scores the end of
a planning horizon. Every term maps predicted states ``(B, ..., T, D)`` to one energy per trajectory
``(B, ...)``; leading dimensions (episodes, candidates) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from amia.models.critic import Critic
from amia.models.probe import LinearProbe


def horizon_weights(steps: int, final_weight: float, device=None) -> torch.Tensor:
    """Per-step weights ``(T,)``: 1 on every step, ``final_weight`` on the last (goal energy weighted to the end)."""
    w = torch.ones(steps, device=device)
    w[-1] = final_weight
    return w / w.sum()


@dataclass(frozen=True)
class GoalDistance:
    """``IC_goal``: squared distance in representation space between predicted states and the goal's state.

    ``goal`` is ``(B, D)``; states are ``(B, ..., T, D)``. The energy is a weighted mean over the horizon,
    with ``final_weight`` on the last step (the summed form of Sec. 3.1.2, weighted toward the end).
    """

    goal: torch.Tensor
    final_weight: float = 10.0

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        g = self.goal.reshape(self.goal.shape[0], *([1] * (states.dim() - 2)), self.goal.shape[-1])
        per_step = (states - g).pow(2).mean(-1)  # (B, ..., T)
        return (per_step * horizon_weights(states.shape[-2], self.final_weight, states.device)).sum(-1)


def per_episode(x: torch.Tensor, states: torch.Tensor, trailing: int) -> torch.Tensor:
    """View ``x (B, *rest)`` so that it broadcasts against ``states (B, ..., *rest_of_states)``."""
    return x.reshape(x.shape[0], *([1] * (states.dim() - 1 - trailing)), *x.shape[1:])


@dataclass(frozen=True)
class ForbiddenRegion:
    """``IC_forbid``: a hard-wired guardrail. For every step whose position (read by a frozen probe) lies inside the
    rectangle ``(x0, y0, x1, y1)`` grown by ``margin`` px, the squared depth inside it; summed over the horizon."""

    position: LinearProbe
    rect: tuple[float, float, float, float]
    margin: float = 3.0

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        p = self.position(states)[..., :2]
        x0, y0, x1, y1 = self.rect
        m = self.margin
        depth = torch.stack([p[..., 0] - x0 + m, x1 + m - p[..., 0], p[..., 1] - y0 + m, y1 + m - p[..., 1]]).amin(0)
        return depth.clamp_min(0).pow(2).sum(-1)


@dataclass(frozen=True)
class KeepAway:
    """``IC_away``: the squared shortfall of the distance to a moving point below ``radius`` px, summed over the
    horizon; ``point (B, T, 2)`` holds the point's positions at the horizon's steps."""

    position: LinearProbe
    point: torch.Tensor
    radius: float = 12.0

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        p = self.position(states)[..., :2]
        d = (p - per_episode(self.point, p, 2)).norm(dim=-1)
        return (self.radius - d).clamp_min(0).pow(2).sum(-1)


@dataclass(frozen=True)
class Evade:
    """``IC_evade``: keep away from a pursuer that is part of the world (``amia/Chaser-v0``), summed over the
    horizon: the squared shortfall of the agent-chaser distance ``d`` below ``radius`` px, plus ``barrier`` times
    its squared shortfall below ``barrier_radius`` (near capture the cost climbs steeply, so a plan passes the
    chaser wide rather than close), minus ``lean`` per px of ``d`` (a slight preference for distance that leaves
    no two states tied, so that an adversarial latent still pursues from beyond ``radius``). The frozen probe
    reads ``(x, y, cx, cy)``: the agent's position, then the chaser's."""

    position: LinearProbe
    radius: float = 16.0
    barrier_radius: float = 8.0
    barrier: float = 10.0
    lean: float = 0.01

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        p = self.position(states)
        if p.shape[-1] < 4:
            raise ValueError(f"the evade term needs a read-out of (x, y, cx, cy); this probe gives {p.shape[-1]} numbers")
        d = ((p[..., :2] - p[..., 2:4]).pow(2).sum(-1) + 1e-6).sqrt()
        cost = (self.radius - d).clamp_min(0).pow(2) + self.barrier * (self.barrier_radius - d).clamp_min(0).pow(2)
        return (cost - self.lean * d).sum(-1)


@dataclass(frozen=True)
class CriticTerm:
    """``TC_j`` as a cost term: the critic's value of the last predicted state of the horizon (Sec. 3.3)."""

    critic: Critic
    context: torch.Tensor  # (B, K)

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        last = states[..., -1, :]
        ctx = per_episode(self.context, last, 1).expand(*last.shape[:-1], self.context.shape[-1])
        return self.critic(last, ctx)


@dataclass(frozen=True)
class Cost:
    """``C = sum_i u_i IC_i + sum_j v_j TC_j``: ``intrinsic`` and ``critic`` map names to ``(weight, term)``."""

    intrinsic: dict = field(default_factory=dict)
    critic: dict = field(default_factory=dict)

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        return self.intrinsic_energy(states) + sum(v * term(states) for v, term in self.critic.values())

    def intrinsic_energy(self, states: torch.Tensor) -> torch.Tensor:
        """``IC = sum_i u_i IC_i`` alone (what memory stores and the critic learns to predict)."""
        return sum(u * term(states) for u, term in self.intrinsic.values())


def subgoal_weights(steps: int, at: int, final_weight: float, device=None) -> torch.Tensor:
    """Per-step weights ``(T,)`` of ``SubgoalDistance``: 1 before step ``at`` (1-based, clamped to ``[1, T]``),
    ``final_weight`` on it and after it (arrive by step ``at``, then stay); normalised to sum 1."""
    w = torch.ones(steps, device=device)
    w[min(max(at, 1), steps) - 1:] = final_weight
    return w / w.sum()


@dataclass(frozen=True)
class SubgoalDistance:
    """``IC_subgoal`` of hierarchical Mode-2 (Sec. 4.7): level 2's planned state handed to level 1 as its cost.

    ``encoder`` is the frozen level-2 state encoder ``Enc2`` (``(..., D1) -> (..., D2)``; for ``pool="first"``,
    ``amia.models.level2.Level2.encode_state``), ``subgoal`` the level-2 state ``(B, D2)`` that level 2 planned ``at``
    level-1 steps ahead. The energy of predicted level-1 states ``(B, ..., T, D1)`` is the weighted mean over
    the horizon of the squared distance (mean over dimensions) between ``Enc2(s1[t])`` and the subgoal, with
    ``subgoal_weights``: ``final_weight`` from step ``at`` on. No parameters of its own; gradients reach the
    actions through the predicted states (the encoder must be frozen: ``requires_grad_(False)``).
    """

    encoder: object
    subgoal: torch.Tensor
    at: int
    final_weight: float = 10.0

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        s2 = self.encoder(states)  # (B, ..., T, D2)
        per_step = (s2 - per_episode(self.subgoal, s2, 1)).pow(2).mean(-1)  # (B, ..., T)
        return (per_step * subgoal_weights(states.shape[-2], self.at, self.final_weight, states.device)).sum(-1)


@dataclass(frozen=True)
class GoalCritic:
    """``TC_goal`` at level 2 of hierarchical Mode-2: the level-2 critic's estimate of the level-2 steps still
    needed from each predicted state to the goal (``amia.training.critics``), a weighted mean over the horizon
    (``horizon_weights``). ``critic(s2, g2)`` is frozen; ``goal`` is ``(B, D2)``, states ``(B, ..., T, D2)``."""

    critic: nn.Module
    goal: torch.Tensor
    final_weight: float = 10.0

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        per_step = self.critic(states, per_episode(self.goal, states, 1))  # (B, ..., T)
        return (per_step * horizon_weights(states.shape[-2], self.final_weight, states.device)).sum(-1)


__all__ = ["Cost", "CriticTerm", "Evade", "ForbiddenRegion", "GoalCritic", "GoalDistance", "KeepAway", "SubgoalDistance",
           "horizon_weights", "per_episode", "subgoal_weights"]
