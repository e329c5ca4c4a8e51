"""The oracle: Mode-2 with the world's true dynamics in place of the world model (the ceiling of a table).

The same planners, cost terms and re-planning as the flat actor (``amia.agent.flat``), but the roll-out is a
differentiable copy of the world's physics (a point among rectangular walls that stops at the first wall on its
way, and the chaser's greedy pursuit) and the state is the world's true one: the agent's position ``(x, y)``,
followed by the chaser's ``(cx, cy)`` in ``amia/Chaser-v0``. What an oracle row fails, the planner and the cost
fail; what it reaches and the model does not, the model misses. Deterministic worlds and the chaser only: the gust
and hazard worlds' randomness has no single true future.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from amia.cost.configurator import TaskConfig, build_cost
from amia.models.probe import LinearProbe
from amia.planning.planners import PlannerConfig, plan, shift

ORACLE_WORLDS = ("amia/TwoRooms-v0", "amia/Wall-v0", "amia/Maze-v0", "amia/Chaser-v0")


def stop_at_walls(pos: torch.Tensor, move: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Points ``(M, 2)`` moved by ``move (M, 2)`` until the first grown rectangle ``[lo, hi]`` ``(M, R, 2)`` on the
    way (``amia.envs.geometry.move_points`` in torch, differentiable almost everywhere)."""
    p, d = pos[:, None], move[:, None]
    moving = d != 0
    safe = torch.where(moving, d, torch.ones_like(d))
    t1, t2 = (lo - p) / safe, (hi - p) / safe
    inside = (p > lo) & (p < hi)
    inf = torch.full_like(t1, float("inf"))
    t_near = torch.where(moving, torch.minimum(t1, t2), torch.where(inside, -inf, inf))
    t_far = torch.where(moving, torch.maximum(t1, t2), torch.where(inside, inf, -inf))
    enter, leave = t_near.amax(-1), t_far.amin(-1)
    hit = (enter < leave) & (enter >= 0) & (enter <= 1)
    frac = torch.where(hit, enter, torch.ones_like(enter)).amin(-1)
    backoff = torch.where(frac < 1, 1e-6 / move.norm(dim=-1).clamp_min(1e-12), torch.zeros_like(frac))
    return pos + move * (frac - backoff).clamp(0, 1)[:, None]


class Simulator:
    """The true dynamics of a batch of ``B`` episodes of a point world, as a roll-out ``(s0 (M, S), actions (M, T,
    2)) -> states (M, T, S)`` whose rows are episode-major (``M = B x n``, as the planners repeat ``s0``)."""

    def __init__(self, world):
        s = world.spec
        rects = torch.tensor(np.array(world.rects), dtype=torch.float32)
        self.lo, self.hi = rects[..., :2] - s.agent_radius, rects[..., 2:] + s.agent_radius
        self.max_step = float(s.max_step)
        self.chaser = getattr(s, "chaser_speed", None)
        self.capture = getattr(s, "capture_radius", None)
        self.state_dim = 4 if self.chaser is not None else 2

    def state(self, world) -> torch.Tensor:
        """The planner's state of each episode ``(B, S)``: the agent's position (and the chaser's)."""
        return torch.as_tensor(np.asarray(world.state)[:, :self.state_dim], dtype=torch.float32)

    def rollout(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        m, b = s0.shape[0], self.lo.shape[0]
        if m % b:
            raise ValueError(f"the roll-out's {m} rows are not a whole number of copies of the {b} episodes")
        lo, hi = self.lo.repeat_interleave(m // b, 0), self.hi.repeat_interleave(m // b, 0)
        p, out = s0[:, :2], []
        c = s0[:, 2:4] if self.chaser is not None else None
        caught = torch.zeros(m, dtype=torch.bool) if c is None else (p - c).norm(dim=-1) < self.capture
        for t in range(actions.shape[1]):
            moved = stop_at_walls(p, actions[:, t].clamp(-self.max_step, self.max_step), lo, hi)
            p_new = torch.where(caught[:, None], p, moved)
            if c is None:
                p = p_new
                out.append(p)
                continue
            toward = p_new - c  # the compass direction nearest to it, as amia.envs.chaser.pursuit_direction
            heading = torch.round(torch.atan2(toward[:, 1], toward[:, 0]) / (torch.pi / 4)) * (torch.pi / 4)
            step = self.chaser * torch.stack([torch.cos(heading), torch.sin(heading)], -1)
            c_new = torch.where(caught[:, None], c, stop_at_walls(c, step, lo, hi))
            p, c = p_new, c_new
            caught = caught | ((p - c).norm(dim=-1) < self.capture)
            out.append(torch.cat([p, c], -1))
        return torch.stack(out, 1)


def identity_read_out(dim: int) -> LinearProbe:
    """The position read-out of a true state: the state itself."""
    return LinearProbe(torch.cat([torch.eye(dim), torch.zeros(1, dim)]))


@dataclass
class OracleActor:
    """Mode-2 on the true dynamics; follows ``amia.agent.actor.Actor``. ``needs_world``: the protocol hands it the
    batched world and the goal states at ``reset`` (it reads true states, not frames)."""

    task: TaskConfig = field(default_factory=TaskConfig)
    planner: str = "gd"
    planning: PlannerConfig = field(default_factory=PlannerConfig)
    bound: float = 2.45
    replan_every: int = 4
    needs_world = True

    def __post_init__(self):
        if self.replan_every < 1:
            raise ValueError(f"replan_every must be >= 1, got {self.replan_every}")
        self.periods, self.warmup_steps = {"plan": self.replan_every}, self.replan_every

    @property
    def horizon(self) -> int:
        return self.task.horizon or self.planning.horizon

    def reset(self, goal_obs: np.ndarray, seed: int = 0, record: int = 0, true_world=None, goal_states=None,
              point: np.ndarray | None = None) -> None:
        if true_world is None or goal_states is None:
            raise ValueError("the oracle plans with the true dynamics: reset needs true_world= and goal_states=")
        self.world, self.sim = true_world, Simulator(true_world)
        d = self.sim.state_dim
        goal = torch.as_tensor(np.asarray(goal_states)[:, :d], dtype=torch.float32)
        self.point = None if point is None else torch.as_tensor(point, dtype=torch.float32)
        self.goal, self.read_out = goal, identity_read_out(d)
        self.generator = torch.Generator().manual_seed(seed)
        self.t, self.actions = 0, None

    def act(self, obs: np.ndarray) -> np.ndarray:
        k = self.t % self.replan_every
        if k == 0:
            s = self.sim.state(self.world)
            future = None if self.point is None else self.point[:, self.t + 1:self.t + 1 + self.horizon]
            cost = build_cost(self.task, self.goal, self.read_out, future)
            cfg = PlannerConfig(**{**self.planning.__dict__, "horizon": self.horizon})
            init = torch.zeros(s.shape[0], cfg.horizon, 2) if self.actions is None else shift(self.actions, self.replan_every)
            self.actions = plan(self.planner, self.sim.rollout, cost, s, init, self.bound, cfg,
                                warm=self.actions is not None, generator=self.generator).actions.detach()
        self.t += 1
        return self.actions[:, k].numpy()

    def report(self) -> dict:
        return {"surprises": 0, "explored_steps": 0, "trace": {"plans": []}}

    def describe(self) -> dict:
        return {"planner": self.planner, "oracle": True, "horizon": self.horizon, "replan_every": self.replan_every,
                "surprise_watch": False, "predictor_calls_per_step": None}


__all__ = ["ORACLE_WORLDS", "OracleActor", "Simulator", "identity_read_out", "stop_at_walls"]
