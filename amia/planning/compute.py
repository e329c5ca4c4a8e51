"""Planning compute, counted in predictor calls, so that planners of different shapes can be compared fairly.

One *predictor call* is one application of a predictor to one state (one candidate, one time step), forward
only. A warm re-plan of ``planner`` with ``PlannerConfig`` ``cfg`` makes ``plan_calls`` of them:

- ``gd``: ``(warm_iterations + 1) * restarts * T`` (every iteration rolls all restarts out; one more roll-out
  scores the final iterate). The backward pass is not counted separately: it doubles both sides alike.
- ``cem`` / ``mppi``: ``warm_iterations * samples' * T``, ``samples'`` the candidates actually drawn (with
  ``populations`` P, ``P * max(2, samples // P)``).
- ``hybrid``: MPPI's count plus ``(refine + 1) * T`` for the gradient polish of one sequence.

Hierarchical Mode-2 (``amia.agent.hierarchical``) pays a level-1 re-plan every ``replan_every`` steps and a
level-2 re-plan every ``replan2_every`` steps; its level-1 cost encodes every predicted level-1 state with the
level-2 encoder, an MLP of the same size class as the predictor, counted as one more call per state (so
level 1 costs twice its roll-outs). A level-2 predictor call is counted as a level-1 one although the level-2
predictor is smaller. With a level-2 critic (``amia.training.critics``), level 2's cost evaluates the critic, an
MLP of the same size class, on every predicted level-2 state: level 2 then counts twice its roll-outs. Cold
starts (the first plan of an episode) are left out of the per-step figure. The surprise check
(``amia.agent.surprise``) rolls the predictor over the executed actions: one call per step when it is on.
"""

from __future__ import annotations

import dataclasses
import math

from amia.planning.planners import PLANNERS, PlannerConfig


def candidates(planner: str, cfg: PlannerConfig) -> int:
    """Action sequences rolled out per iteration (gradient restarts or drawn samples)."""
    if planner not in PLANNERS:
        raise ValueError(f"unknown planner {planner!r}; known: {', '.join(PLANNERS)}")
    if planner == "gd":
        return max(1, cfg.restarts)
    p = max(1, cfg.populations)
    return cfg.samples if p == 1 else p * max(2, cfg.samples // p)


def plan_calls(planner: str, cfg: PlannerConfig, warm: bool = True) -> int:
    """Predictor calls of one plan (warm: ``warm_iterations``; cold: ``iterations``)."""
    it, t = (cfg.warm_iterations if warm else cfg.iterations), cfg.horizon
    n = candidates(planner, cfg)
    if planner == "gd":
        return (it + 1) * n * t
    calls = it * n * t
    return calls + (cfg.refine + 1) * t if planner == "hybrid" else calls


def flat_calls_per_step(planner: str, cfg: PlannerConfig, replan_every: int, surprise: bool = False) -> float:
    """Predictor calls per level-1 step of flat Mode-2 (warm re-plans every ``replan_every`` steps; ``surprise``:
    plus the surprise check's call)."""
    return plan_calls(planner, cfg) / replan_every + int(surprise)


def hierarchical_calls_per_step(planner1: str, cfg1: PlannerConfig, replan_every: int, planner2: str,
                                cfg2: PlannerConfig, replan2_every: int, encode_factor: int = 2,
                                level2_factor: int = 1, surprise: bool = False) -> float:
    """Predictor calls per level-1 step of hierarchical Mode-2 (level 1 counted ``encode_factor`` times: its
    roll-outs plus the level-2 encoding of every predicted state in the subgoal cost; level 2 ``level2_factor``
    times: 2 with a level-2 critic; ``surprise``: plus the surprise check's call)."""
    return (encode_factor * plan_calls(planner1, cfg1) / replan_every
            + level2_factor * plan_calls(planner2, cfg2) / replan2_every + int(surprise))


def match_compute(planner: str, cfg: PlannerConfig, replan_every: int, target: float,
                  surprise: bool = False) -> PlannerConfig:
    """``cfg`` with the fewest warm iterations (cold iterations scaled alike, never fewer) whose predictor calls
    per step (``surprise``: with the check's) are at least ``target``; other settings (horizon, samples,
    restarts) are kept."""
    def per_step(it: int) -> float:
        return flat_calls_per_step(planner, dataclasses.replace(cfg, warm_iterations=it), replan_every, surprise)

    it = max(1, cfg.warm_iterations)
    while per_step(it) < target:
        it += 1
    scale = it / max(1, cfg.warm_iterations)
    return dataclasses.replace(cfg, warm_iterations=it, iterations=max(cfg.iterations, math.ceil(cfg.iterations * scale)))
