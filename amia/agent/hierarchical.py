"""Hierarchical Mode-2 (Sec. 4.7, Fig. 16): level 2 plans subgoals, level 1 plans the actions that reach them.

Both levels use the planner functions of flat Mode-2 (``amia.planning.planners.plan``), only with other roll-outs
and costs:

- **Level 2** plans ``T2`` abstract actions ``a2 (B, T2, A2)`` in the box ``[-1, 1]`` (the level-2 actions are
  ``tanh``-bounded) through ``level2.rollout`` from ``s2 = Enc2(s1 now)``, minimising ``GoalDistance`` to
  ``Enc2(goal s1)`` in level-2 space (weighted less toward the end than at level 1, so the plan heads for
  the goal from its first step). A level 2 whose abstract actions are latents with a prior plans through
  ``level2.plan_rollout`` instead: the planned numbers place each latent within the prior's spread at its
  predicted state (``prior_spread``). Its ``subgoal``-th planned state, ``subgoal * k`` level-1 steps ahead
  (``k`` the level-2 stride), is the subgoal.
- **Level 1** plans concrete actions through the level-1 predictor, minimising ``SubgoalDistance``: the
  squared distance between ``Enc2`` of its predicted states and the subgoal, weighted from the step at which
  level 2 expects the subgoal (``subgoal * k`` steps after the level-2 plan, fewer as time passes) on.
- **Goal switch**: at each level-2 plan, an episode whose goal is within the level-1 horizon hands the goal
  itself to level 1 (``GoalDistance`` to the goal's level-1 state, the finer of the two spaces: success is
  judged within 4.5 px). "Within the level-1 horizon" is read from level 2's own plan: the current level-2
  state or one of the first ``level1.horizon // k`` planned ones (the level-2 steps that the level-1 horizon
  covers) lies within ``switch_distance`` of the goal's level-2 state, in the units of ``GoalDistance``
  (per-dimension mean squared distance; level-2 states have unit standard deviation per dimension by their
  VICReg hinge). Using level 2's plan rather than the current state alone keeps a goal just behind a wall,
  close in space but many steps away, with level 2. The rule is re-evaluated at every level-2 plan.
- **Surprise**: where level 1's world model is wrong (a move it predicts through a door's jamb stops dead at
  the wall), warm-started re-plans repeat the failed move; ``amia.agent.surprise`` notices that perception did
  not move as predicted and takes a few exploratory steps before the next re-plan.
- **Receding horizon**: level 1 re-plans every ``replan_every`` steps and level 2 every ``replan2_every``
  (a multiple of ``replan_every``; 0: every ``k``), each warm-started from its previous plan shifted by the
  steps executed since (``shift``; for level 2 by ``replan2_every // k`` level-2 steps).

Batched over episodes like ``amia.agent.Agent.run``: every episode re-plans at the same steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from amia.agent.surprise import Surprise, SurpriseConfig
from amia.cost.terms import Cost, GoalCritic, GoalDistance, SubgoalDistance, per_episode
from amia.infra.validate import at_least, one_of
from amia.planning.compute import hierarchical_calls_per_step
from amia.planning.planners import PLANNERS, PlannerConfig, plan, shift

if TYPE_CHECKING:
    from amia.models.jepa import JEPA
    from amia.models.level2 import Level2


@dataclass
class HierarchyConfig:
    """Settings of hierarchical Mode-2 (``hierarchy.KEY=value`` on the ``amia eval`` command line).

    ``level2``: the level-2 planner's settings, its ``horizon`` T2 in level-2 steps (8 = 64 level-1 steps at
    k = 8); ``level1``: the level-1 planner's, ``horizon`` in level-1 steps (at least ``subgoal * k``);
    ``planner2``: level 2's planner ("" = the same as level 1's). ``replan_every``: level-1 steps between
    level-1 re-plans; ``replan2_every``: between level-2 re-plans (0: the stride k). ``subgoal``: which
    planned level-2 state (1 = the first, k steps ahead) is the subgoal; ``subgoal_weight``: the weight of
    ``SubgoalDistance`` from the subgoal's step on (1 before). ``final_weight``: the goal cost's weight on
    the last step at level 1 (when it plans to the goal itself); ``level2_final_weight`` at level 2, lower, so
    that level 2's plan heads for the goal from its first step (its subgoals lead, and the goal switch reads
    its early states). ``switch_distance``: the goal-switch threshold (module docstring). ``critic_weight``: the
    level-2 critic's weight in level 2's cost. ``surprise``: exploration where level 1's world model was wrong
    (``amia.agent.surprise``; on by default, checked at every level-1 re-plan, 2 exploratory steps per surprise:
    on the maze's tuning seed 3, 4 steps led 6 of 100 episodes away from goals they had reached, 0.93 -> 0.98).
    ``stay``: where the goal switch is on, compare each level-1 plan with staying put and keep still where that is
    predicted to cost no more (``HierarchicalActor.stay_where_better``; on by default: on the maze's tuning seeds
    episodes that had reached the goal wandered 1-7 px around it with the switch on, and left it; seed 4
    0.95 -> 0.98, seed 3 0.98 -> 0.98). ``prior_spread``: for a level 2 with latent abstract actions and a prior
    (``HJEPAConfig.prior``), how many of the prior's standard deviations around its mean the planner's box
    [-1, 1] spans (0: plan the latents directly in their box).
    """

    level1: PlannerConfig = field(default_factory=lambda: PlannerConfig(horizon=24))
    level2: PlannerConfig = field(default_factory=lambda: PlannerConfig(horizon=8, iterations=20, warm_iterations=8,
                                                                        knot_every=2))
    planner2: str = ""
    replan_every: int = 4
    replan2_every: int = 0
    subgoal: int = 2
    subgoal_weight: float = 10.0
    final_weight: float = 30.0
    level2_final_weight: float = 5.0
    switch_distance: float = 0.3
    critic_weight: float = 1.0
    surprise: SurpriseConfig = field(default_factory=lambda: SurpriseConfig(enabled=True, steps=2))
    stay: bool = True
    prior_spread: float = 2.0

    def __post_init__(self):
        one_of(self, "planner2", ("", *PLANNERS))
        at_least(self, 1, "replan_every", "subgoal")
        at_least(self, 0, "prior_spread", "replan2_every", "switch_distance", "subgoal_weight", "final_weight",
                 "level2_final_weight", "critic_weight")

    def level2_every(self, stride: int) -> int:
        """Level-1 steps between level-2 re-plans."""
        return self.replan2_every or stride


@dataclass(frozen=True)
class Switch:
    """Per-episode choice between two cost terms: ``first`` where ``mask (B,)`` is true, ``second`` elsewhere."""

    mask: torch.Tensor
    first: Callable[[torch.Tensor], torch.Tensor]
    second: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        a, b = self.first(states), self.second(states)
        return torch.where(per_episode(self.mask, a, 0), a, b)


@dataclass
class Episodes:
    """The mutable state of a batch of episodes under hierarchical Mode-2 (made by ``HierarchicalActor.reset``)."""

    goal1: torch.Tensor  # (B, D1): the goal's level-1 state
    goal2: torch.Tensor  # (B, D2): the goal's level-2 state
    generator: torch.Generator
    record: int = 0
    t: int = 0
    history: torch.Tensor | None = None  # (B, span, D1): the last level-1 states (the level-2 pool's input)
    plan1: torch.Tensor | None = None  # (B, T1, A)
    plan2: torch.Tensor | None = None  # (B, T2, A2)
    states2: torch.Tensor | None = None  # (B, T2, D2): the level-2 plan's predicted states
    subgoal: torch.Tensor | None = None  # (B, D2)
    near: torch.Tensor | None = None  # (B,) bool: the goal switch
    planned2_at: int = 0
    surprise: Surprise | None = None
    trace: dict = field(default_factory=lambda: {"frames": [], "plans": [], "subgoals": [], "switched": [],
                                                 "level2_plans": []})


@dataclass
class HierarchicalActor:
    """Hierarchical Mode-2 over a frozen level 1 (``model``: ``.encoder``, ``.predictor.rollout``) and a frozen
    level 2 (``level2``: ``.encode``, ``.rollout``, ``.cfg.stride``, ``.cfg.span``, ``.action_dim``).

    ``planner`` plans level 1 (and level 2 unless ``cfg.planner2``); ``bound`` is the world's action bound;
    ``critic2`` the run's level-2 critic (``amia.training.critics``), or ``None``.
    """

    model: JEPA
    level2: Level2
    planner: str = "gd"
    cfg: HierarchyConfig = field(default_factory=HierarchyConfig)
    bound: float = 2.45
    critic2: nn.Module | None = None

    def __post_init__(self):
        self.periods = {"plan": self.cfg.replan_every, "level2_plan": self.cfg.level2_every(self.stride)}
        self.warmup_steps = self.cfg.level2_every(self.stride)
        if self.planner not in PLANNERS:
            raise ValueError(f"unknown planner {self.planner!r}; known: {', '.join(PLANNERS)}")
        k, c = self.stride, self.cfg
        if c.level1.horizon < c.subgoal * k:
            raise ValueError(f"hierarchy.level1.horizon ({c.level1.horizon}) must reach the subgoal, "
                             f"hierarchy.subgoal * level-2 stride = {c.subgoal} * {k} level-1 steps")
        if c.subgoal > c.level2.horizon:
            raise ValueError(f"hierarchy.subgoal ({c.subgoal}) is beyond the level-2 horizon ({c.level2.horizon})")
        if c.level2_every(k) % c.replan_every:
            raise ValueError(f"level 2 re-plans every {c.level2_every(k)} steps: hierarchy.replan2_every must be a "
                             f"multiple of hierarchy.replan_every ({c.replan_every})")

    @property
    def stride(self) -> int:
        return self.level2.cfg.stride

    @property
    def device(self) -> torch.device:
        return next(iter(self.model.parameters())).device

    @property
    def planner2(self) -> str:
        return self.cfg.planner2 or self.planner

    @torch.no_grad()
    def perceive(self, obs: np.ndarray) -> torch.Tensor:
        """Level-1 perception: frames ``(B, ...)`` -> states ``(B, D1)``."""
        return self.model.encoder(torch.from_numpy(obs).to(self.device))

    def encode2(self, s1: torch.Tensor) -> torch.Tensor:
        """``Enc2`` of single level-1 states ``(..., D1) -> (..., D2)`` (a pool of one state)."""
        return self.level2.encode(s1.unsqueeze(-2))

    def reset(self, goal_obs: np.ndarray, seed: int = 0, record: int = 0) -> None:
        """Start a batch of episodes towards the goals shown in ``goal_obs``."""
        goal1 = self.perceive(goal_obs)
        with torch.no_grad():
            goal2 = self.encode2(goal1)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        watch = Surprise(self.cfg.surprise, self.model.predictor.rollout, self.bound, gen, self.cfg.replan_every)
        self.ep = Episodes(goal1, goal2, gen, record, surprise=watch)

    def plan_level2(self, ep: Episodes, s2: torch.Tensor) -> None:
        """Level 2: plan abstract actions to the goal's level-2 state; set the subgoal and the goal switch."""
        c, k = self.cfg, self.stride
        every = c.level2_every(k)
        if ep.plan2 is None:
            init = torch.zeros(s2.shape[0], c.level2.horizon, self.level2.action_dim, device=s2.device)
        else:
            init = shift(ep.plan2, every // k) if every >= k else ep.plan2
        cost = GoalDistance(ep.goal2, c.level2_final_weight)
        if self.critic2 is not None and c.critic_weight:
            cost = Cost({"goal": (1.0, cost)}, {"critic": (c.critic_weight, GoalCritic(self.critic2, ep.goal2,
                                                                                         c.level2_final_weight))})
        rollout = self.level2_rollout()
        ep.plan2 = plan(self.planner2, rollout, cost, s2, init, 1.0, c.level2,
                        warm=ep.plan2 is not None, generator=ep.generator).actions
        with torch.no_grad():
            ep.states2 = rollout(s2, ep.plan2)
        ep.subgoal = ep.states2[:, c.subgoal - 1]
        ep.near = self.goal_within_reach(s2, ep.states2, ep.goal2)

    def level2_rollout(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """What level 2 plans through: within the prior of a latent level 2 (``Level2.plan_rollout``), else the
        abstract actions themselves."""
        if self.uses_prior:
            return partial(self.level2.plan_rollout, spread=self.cfg.prior_spread)
        return self.level2.rollout

    @property
    def uses_prior(self) -> bool:
        return bool(getattr(self.level2, "has_prior", False)) and self.cfg.prior_spread > 0

    def goal_within_reach(self, s2: torch.Tensor, states2: torch.Tensor, goal2: torch.Tensor) -> torch.Tensor:
        """The goal switch ``(B,)``: the current level-2 state or one of the first ``level1.horizon // k`` planned
        ones is within ``switch_distance`` (mean squared distance per dimension) of the goal's level-2 state."""
        reach = self.cfg.level1.horizon // self.stride
        path = torch.cat([s2[:, None], states2[:, :reach]], dim=1)  # (B, 1 + reach, D2)
        return (path - goal2[:, None]).pow(2).mean(-1).amin(1) <= self.cfg.switch_distance

    def level1_cost(self, ep: Episodes, at: int) -> Switch:
        """Level 1's cost: the goal itself where the goal switch is on, else the subgoal expected ``at`` steps ahead."""
        goal = GoalDistance(ep.goal1, self.cfg.final_weight)
        sub = SubgoalDistance(self.encode2, ep.subgoal, at, self.cfg.subgoal_weight)
        return Switch(ep.near, goal, sub)

    def plan_level1(self, ep: Episodes, s1: torch.Tensor, at: int) -> None:
        """Level 1: plan concrete actions for the subgoal (or the goal), warm-started from the previous plan."""
        c = self.cfg
        if ep.plan1 is None:
            init = torch.zeros(s1.shape[0], c.level1.horizon, self.model.action_dim, device=s1.device)
        else:
            init = shift(ep.plan1, c.replan_every)
        cost = self.level1_cost(ep, at)
        ep.plan1 = plan(self.planner, self.model.predictor.rollout, cost, s1, init, self.bound,
                        c.level1, warm=ep.plan1 is not None, generator=ep.generator).actions
        if c.stay:
            ep.plan1 = self.stay_where_better(ep, s1, ep.plan1, cost)

    @torch.no_grad()
    def stay_where_better(self, ep: Episodes, s1: torch.Tensor, actions: torch.Tensor, cost: Switch) -> torch.Tensor:
        """Where the goal switch is on, staying put (zero actions) is one more candidate: an episode whose
        predicted cost of staying is no higher than its plan's keeps still (``HierarchyConfig.stay``)."""
        b, still = s1.shape[0], torch.zeros_like(actions)
        states = self.model.predictor.rollout(torch.cat([s1, s1]), torch.cat([actions, still]))
        stay = ep.near & (cost(states[b:]) <= cost(states[:b]))
        return torch.where(stay[:, None, None], still, actions)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One step: perceive, re-plan the levels that are due, return actions ``(B, A)``."""
        ep = self.ep
        c, k, t = self.cfg, self.stride, ep.t
        s1 = self.perceive(obs)
        span = self.level2.cfg.span
        ep.history = (s1[:, None].expand(-1, span, -1) if ep.history is None
                      else torch.cat([ep.history[:, 1:], s1[:, None]], dim=1))  # before time 0: the first state
        if t % c.level2_every(k) == 0:
            with torch.no_grad():
                s2 = self.level2.encode(ep.history)
            self.plan_level2(ep, s2)
            ep.planned2_at = t
            if ep.record:
                ep.trace["level2_plans"].append(ep.states2[:ep.record].cpu())
        if t % c.replan_every == 0:
            self.plan_level1(ep, s1, c.subgoal * k - (t - ep.planned2_at))
            if ep.record:
                with torch.no_grad():
                    ep.trace["plans"].append(self.model.predictor.rollout(s1, ep.plan1)[:ep.record].cpu())
                ep.trace["subgoals"].append(ep.subgoal[:ep.record].cpu())
                ep.trace["switched"].append(ep.near[:ep.record].cpu().numpy())
        ep.t += 1
        return ep.surprise.step(s1, ep.plan1[:, t % c.replan_every], t, ep.goal1, ep.near).detach().cpu().numpy()

    def report(self) -> dict:
        """Surprise counts over all episodes and, for the recorded ones, per level-1 re-plan the plan's predicted
        level-1 states, the subgoal (in level-2 space, ``subgoal_space``) and the goal switch; per level-2 re-plan
        its predicted states."""
        trace = dict(self.ep.trace, subgoal_space=self.encode2)
        return {"surprises": self.ep.surprise.surprises, "explored_steps": self.ep.surprise.explored_steps,
                "trace": trace}

    def describe(self) -> dict:
        c, k = self.cfg, self.stride
        calls = hierarchical_calls_per_step(self.planner, c.level1, c.replan_every, self.planner2, c.level2,
                                            c.level2_every(k), level2_factor=2 if self.critic2 is not None
                                            and c.critic_weight else 1, surprise=c.surprise.enabled)
        return {"planner": self.planner, "horizon": c.level1.horizon, "replan_every": c.replan_every,
                "surprise_watch": c.surprise.enabled,
                "predictor_calls_per_step": calls, "planner2": self.planner2, "level2_horizon": c.level2.horizon,
                "stride": k, "replan2_every": c.level2_every(k),
                "level2_prior_spread": c.prior_spread if self.uses_prior else None,
                "level2_critic_weight": c.critic_weight if self.critic2 is not None else 0.0, "stay": c.stay}


__all__ = ["Episodes", "HierarchicalActor", "HierarchyConfig", "Switch"]
