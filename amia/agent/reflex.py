"""Mode-1 through the reflex (``amia.models.reflex``): the full encoder perceives the goal frame once per episode;
every step is one numpy forward pass of the reflex on the frame. Follows ``amia.agent.actor.Actor``.

The reflex has no world model to be surprised by (``amia.agent.surprise``), but it has the plainest prediction of
all: a commanded move changes what it sees. ``StuckWatch`` checks it every ``every`` steps: an episode whose
frame is exactly the same as ``every`` steps before, although the net commanded displacement was at least
``command`` of the largest possible, is pinned (against a wall, in the corner of a door's jamb) and takes
``steps`` exploratory steps, ``random`` or ``back_off``, as the surprise watch does. On TwoRooms' tuning seed 5
every failure of the reflex without it was such a pin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from amia.agent.surprise import SurpriseConfig
from amia.models.reflex import Reflex


class StuckWatch:
    """The watch over a batch of episodes (module docstring), in numpy; ``cfg``: the surprise watch's settings
    (``ratio`` unused: a pinned frame does not change at all); ``every``: the window when ``cfg.every`` is 0."""

    def __init__(self, cfg: SurpriseConfig, bound: float, seed: int, every: int = 4):
        self.cfg, self.bound, self.every = cfg, bound, cfg.every or every
        self.rng = np.random.default_rng(seed)
        self.then: np.ndarray | None = None  # the frames at the window's start
        self.moved: np.ndarray | None = None  # the window's net commanded displacement (B, A)
        self.window, self.exploring = 0, False
        self.left = self.direction = self.side = None
        self.surprises = self.explored_steps = 0

    def exploration(self, failed: np.ndarray) -> np.ndarray:
        if self.cfg.explore == "random":
            d = self.rng.uniform(-1, 1, failed.shape)
        else:
            if failed.shape[-1] != 2:
                raise ValueError(f"surprise.explore=back_off turns in the plane: it needs 2-D actions, got "
                                 f"{failed.shape[-1]}-D")
            if self.side is None:
                self.side = np.where(self.rng.random(failed.shape[0]) < 0.5, 1.0, -1.0)
            c, s = 0.7071, 0.7071 * self.side
            d = np.stack([-c * failed[:, 0] + s * failed[:, 1], -s * failed[:, 0] - c * failed[:, 1]], -1)
        return (d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-6) * self.bound).astype(np.float32)

    def step(self, obs: np.ndarray, wanted: np.ndarray, t: int) -> np.ndarray:
        """The action to execute at step ``t`` on frames ``obs``: ``wanted`` unless the episode is exploring."""
        if t % self.every == 0:
            if self.then is not None and self.window == self.every:
                least = (self.cfg.command * self.every * self.bound) ** 2
                asked = np.einsum("ba,ba->b", self.moved, self.moved) >= least
                if asked.any():
                    new = asked & (obs == self.then).reshape(obs.shape[0], -1).all(1)
                    if new.any():
                        self.surprises += int(new.sum())
                        d = self.exploration(self.moved)
                        self.direction = d if self.direction is None else np.where(new[:, None], d, self.direction)
                        fresh = np.where(new, self.cfg.steps, 0)
                        self.left = fresh if self.left is None else np.maximum(self.left, fresh)
                        self.exploring = True
            self.then, self.moved, self.window = obs.copy(), np.zeros_like(wanted), 0
        a = wanted
        if self.exploring:
            going = self.left > 0
            a = np.where(going[:, None], self.direction, wanted)
            self.explored_steps += int(going.sum())
            self.left = np.maximum(self.left - 1, 0)
            self.exploring = bool(self.left.any())
        self.moved += a
        self.window += 1
        return a


@dataclass
class ReflexActor:
    """Acts with ``reflex``; ``encoder`` (the run's level-1 perception) gives the goal's state at ``reset``;
    ``watch``: the stuck watch's settings (``enabled`` off: none)."""

    reflex: Reflex
    encoder: nn.Module
    watch: SurpriseConfig = field(default_factory=lambda: SurpriseConfig(enabled=True))

    def __post_init__(self):
        self.kernel = self.reflex.kernel()
        self.periods = {"plan": 1}
        self.warmup_steps = self.watch.every or 4  # as Mode-1: one watch window
        self.goal: np.ndarray | None = None

    def reset(self, goal_obs: np.ndarray, seed: int = 0, record: int = 0, **task_inputs) -> None:
        shape = tuple(goal_obs.shape[1:])
        if shape != self.reflex.frame_shape:
            raise ValueError(f"the reflex reads frames of shape {self.reflex.frame_shape}, the goal frames have {shape}")
        with torch.inference_mode():
            self.goal = self.encoder(torch.from_numpy(goal_obs)).numpy()
        self.context = self.kernel.context(self.goal)
        self.stuck = StuckWatch(self.watch, self.reflex.bound, seed) if self.watch.enabled else None
        self.t = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        a = self.kernel.act(obs, self.context)
        if self.stuck is not None:
            a = self.stuck.step(obs, a, self.t)
        self.t += 1
        return a

    def report(self) -> dict:
        w = self.stuck
        return {"surprises": 0 if w is None else w.surprises, "explored_steps": 0 if w is None else w.explored_steps,
                "trace": {"plans": []}}

    def describe(self) -> dict:
        return {"planner": "reflex", "horizon": 0, "replan_every": 1, "surprise_watch": bool(self.watch.enabled),
                "risk": None,
                "futures": None, "policy_init": False, "predictor_calls_per_step": None}


__all__ = ["ReflexActor", "StuckWatch"]
