"""Configurator (Sec. 3, Fig. 2): executive control that sets up the other modules for a task.

A task name maps to a ``TaskConfig``: which intrinsic terms are active and their weights ``u``, the critic's
weight ``v``, the planning mode and horizon. ``build_cost`` turns it into the cost module for a batch of
episodes. The configurator changes only weights and the task's data (goal, region, moving point); the
intrinsic terms themselves stay hard-wired (Sec. 3.2).

Tasks:
- ``reach``: reach the goal (the goal-distance term alone).
- ``reach_avoid``: reach the goal without ever entering a forbidden rectangle (goal + forbidden-region terms).
- ``keep_away``: stay at least ``away_radius`` px from a point that moves through the world (keep-away term).
- ``evade``: keep away from the chaser of ``amia/Chaser-v0``, read from the state (evade term).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from amia.cost.terms import Cost, CriticTerm, Evade, ForbiddenRegion, GoalDistance, KeepAway
from amia.models.critic import Critic
from amia.models.probe import LinearProbe
from amia.planning.uncertainty import UncertaintyConfig


@dataclass
class TaskConfig:
    """Everything the configurator decides for one task (weights ``u_*`` of intrinsic terms, ``critic_weight`` v).

    ``has_region``: the task has a forbidden ``region`` (its episodes start and end outside it, and entering it
    fails an episode); ``forbid_weight`` is the weight of the term that keeps the planner out (0: unconstrained).
    ``horizon`` 0 keeps the planner's own horizon. ``uncertainty``: how a world model with a latent weighs its
    futures (expected cost, risk-averse, adversarial: ``amia.planning.uncertainty``).
    """

    name: str = "reach"
    mode: int = 2
    horizon: int = 0
    goal_weight: float = 1.0
    final_weight: float = 30.0
    has_region: bool = False
    forbid_weight: float = 0.0
    region: tuple[float, float, float, float] = (46.0, 20.0, 56.0, 44.0)
    region_margin: float = 2.0
    away_weight: float = 0.0
    away_radius: float = 12.0
    point_speed: float = 1.5
    evade_weight: float = 0.0
    evade_radius: float = 16.0
    evade_barrier: float = 10.0
    evade_barrier_radius: float = 8.0
    evade_lean: float = 0.01
    critic_weight: float = 0.0
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)


TASKS: dict[str, TaskConfig] = {
    "reach": TaskConfig(),
    "reach_avoid": TaskConfig(name="reach_avoid", has_region=True, forbid_weight=1.0),
    "keep_away": TaskConfig(name="keep_away", goal_weight=0.0, away_weight=1.0),
    "evade": TaskConfig(name="evade", goal_weight=0.0, evade_weight=1.0),
}


def configure(task: str, **changes) -> TaskConfig:
    """The configuration of a named task, with optional field changes (``horizon=8``, ``critic_weight=1``)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    unknown = [k for k in changes if k not in {f.name for f in dataclasses.fields(TaskConfig)}]
    if unknown:
        raise ValueError(f"unknown task setting(s) {unknown}; known: {[f.name for f in dataclasses.fields(TaskConfig)]}")
    return dataclasses.replace(TASKS[task], **changes)


def moving_point(start: np.ndarray, target: np.ndarray, speed: float, steps: int, size: float = 64.0,
                 border: float = 4.0) -> np.ndarray:
    """Positions ``(B, steps + 1, 2)`` of a point that leaves ``start`` towards ``target`` at ``speed`` px per step
    and bounces off the frame (``border`` px in): the keep-away task's threat, known in advance."""
    direction = target - start
    direction = direction / np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-6)
    lo, hi = border, size - border
    raw = start[:, None] + speed * np.arange(steps + 1)[None, :, None] * direction[:, None]
    span = hi - lo
    folded = np.mod(raw - lo, 2 * span)
    return lo + np.where(folded > span, 2 * span - folded, folded)


def build_cost(task: TaskConfig, goal_states: torch.Tensor, position: LinearProbe | None = None,
               point: torch.Tensor | None = None, critic: Critic | None = None) -> Cost:
    """The cost module for a batch of episodes: ``goal_states (B, D)``; ``point (B, T, 2)`` the moving point over the
    horizon (keep-away); ``position`` the frozen probe the region and keep-away terms read positions with."""
    intrinsic, critics = {}, {}
    if task.goal_weight:
        intrinsic["goal"] = (task.goal_weight, GoalDistance(goal_states, task.final_weight))
    if task.forbid_weight or task.away_weight or task.evade_weight:
        if position is None:
            raise ValueError(f"task {task.name!r} needs a position probe (run `amia probe` or `amia distill` to make one)")
    if task.forbid_weight:
        intrinsic["forbid"] = (task.forbid_weight, ForbiddenRegion(position, task.region, task.region_margin))
    if task.away_weight:
        if point is None:
            raise ValueError(f"task {task.name!r} needs the moving point's positions")
        intrinsic["away"] = (task.away_weight, KeepAway(position, point, task.away_radius))
    if task.evade_weight:
        intrinsic["evade"] = (task.evade_weight, Evade(position, task.evade_radius, task.evade_barrier_radius,
                                                              task.evade_barrier, task.evade_lean))
    if task.critic_weight:
        if critic is None:
            raise ValueError("critic_weight > 0 needs a trained critic (run `amia distill`)")
        critics["critic"] = (task.critic_weight, CriticTerm(critic, goal_states))
    if not intrinsic:
        raise ValueError(f"task {task.name!r} has no active intrinsic term")
    return Cost(intrinsic, critics)
