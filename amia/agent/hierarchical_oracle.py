"""The hierarchical oracle: hierarchical Mode-2 (``amia.agent.hierarchical``) with the world's true dynamics at both
levels, the ceiling of a hierarchical row (``amia eval --oracle --hierarchical``).

The same actor, costs, goal switch and re-planning as with a trained run; only the two world models change:

- **Level 1** is the true simulator (``amia.planning.oracle.Simulator``): its state is the agent's position in
  pixels, its roll-out the world's physics.
- **Level 2**'s state is the position divided by ``scale`` (the spread of positions over the board, so that level-2
  states have about unit standard deviation per dimension, like a trained level 2's, and ``switch_distance`` keeps
  its meaning); its abstract action ``a2`` in ``[-1, 1]^2`` is a level-1 action ``a2 * bound`` held for the
  ``stride`` level-1 steps of one level-2 step, rolled out on the same physics.

A trained level 2 that beats this row has learned more than straight-line distance on the board (the way round
walls); one that trails it loses to its model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch

from amia.agent.hierarchical import Episodes, HierarchicalActor, HierarchyConfig
from amia.agent.surprise import Surprise
from amia.planning.oracle import Simulator


@dataclass
class TrueLevel1:
    """The world's physics in the place of a level-1 world model (``.predictor.rollout``, ``.action_dim``)."""

    sim: Simulator
    action_dim: int = 2

    @property
    def predictor(self) -> SimpleNamespace:
        return SimpleNamespace(rollout=self.sim.rollout)


@dataclass
class TrueLevel2:
    """Level 2 on the true dynamics: states are positions / ``scale``; an abstract action in ``[-1, 1]^2`` is the
    level-1 action ``a2 * bound`` held for ``stride`` steps."""

    sim: Simulator
    stride: int
    scale: float
    bound: float
    action_dim: int = 2
    cfg: SimpleNamespace = field(init=False)

    def __post_init__(self):
        self.cfg = SimpleNamespace(stride=self.stride, span=1)

    def encode(self, pool: torch.Tensor) -> torch.Tensor:
        """A pool of level-1 states ``(..., span, 2)`` -> the level-2 state of its last one ``(..., 2)``."""
        return pool[..., -1, :2] / self.scale

    def rollout(self, s2: torch.Tensor, actions2: torch.Tensor) -> torch.Tensor:
        """``(M, 2)``, ``(M, T2, 2)`` -> the level-2 states after each level-2 step ``(M, T2, 2)``."""
        held = actions2.clamp(-1, 1).repeat_interleave(self.stride, dim=1) * self.bound
        return self.sim.rollout(s2 * self.scale, held)[:, self.stride - 1::self.stride] / self.scale


@dataclass
class HierarchicalOracle(HierarchicalActor):
    """``HierarchicalActor`` on the true dynamics. Build it with ``HierarchicalOracle.for_world``; ``needs_world``:
    the protocol hands it the batched world and the goal states at ``reset``."""

    stride_steps: int = 8
    needs_world = True

    @classmethod
    def for_world(cls, planner: str, cfg: HierarchyConfig, bound: float, stride: int = 8) -> HierarchicalOracle:
        """The oracle for ``planner`` and ``cfg`` with level-2 stride ``stride``; the world comes at ``reset``."""
        return cls(None, None, planner, cfg, bound, None, stride)

    @property
    def stride(self) -> int:
        return self.stride_steps

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def perceive(self, obs: np.ndarray) -> torch.Tensor:
        """The true positions of the episodes (the frames are not read)."""
        return self.sim.state(self.world)

    def reset(self, goal_obs: np.ndarray, seed: int = 0, record: int = 0, true_world=None,
              goal_states=None) -> None:
        if true_world is None or goal_states is None:
            raise ValueError("the oracle plans with the true dynamics: reset needs true_world= and goal_states=")
        self.world, self.sim = true_world, Simulator(true_world)
        if self.sim.state_dim != 2:
            raise ValueError("the hierarchical oracle plans for a lone agent; this world has a chaser")
        s = true_world.spec
        scale = (float(s.size) - 2 * s.border) / 12 ** 0.5  # the standard deviation of a uniform position
        self.model, self.level2 = TrueLevel1(self.sim), TrueLevel2(self.sim, self.stride_steps, scale, self.bound)
        goal1 = torch.as_tensor(np.asarray(goal_states)[:, :2], dtype=torch.float32)
        gen = torch.Generator().manual_seed(seed)
        watch = Surprise(self.cfg.surprise, self.sim.rollout, self.bound, gen, self.cfg.replan_every)
        self.ep = Episodes(goal1, self.encode2(goal1), gen, record, surprise=watch)

    def describe(self) -> dict:
        c, k = self.cfg, self.stride
        return {"planner": self.planner, "oracle": True, "horizon": c.level1.horizon, "replan_every": c.replan_every,
                "surprise_watch": c.surprise.enabled, "predictor_calls_per_step": None, "planner2": self.planner2,
                "level2_horizon": c.level2.horizon, "stride": k, "replan2_every": c.level2_every(k),
                "level2_critic_weight": 0.0, "stay": c.stay}


__all__ = ["HierarchicalOracle", "TrueLevel1", "TrueLevel2"]
