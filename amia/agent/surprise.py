"""Surprise: when the world did not move as the world model predicted, the actor explores before it re-plans.

Sec. 3.1.1 pairs every action with a prediction, ``s[t+1] = Pred(s[t], a[t])``, to be compared with the next
perception. Mode-2 re-plans from the perceived state, warm-started from its previous plan, so where the world
model is wrong the re-plan repeats the move that failed. The common case in the rooms and maze worlds: a move
that the model predicts through the jamb of a door stops dead at the wall, and the agent stalls there for good.

``Surprise`` watches the executed actions in windows of ``every`` steps. At the end of each window it rolls the
world model over the window's actions from the state perceived at its start and compares the prediction with
the state perceived now. An episode is *surprised* when the agent asked for a move (the net commanded
displacement is at least ``command`` of the largest possible, ``every * bound``) and perception moved less than
``ratio`` of the predicted motion (squared distances in state space, so the test needs no scale), unless the
episode is *settling*: its goal state is nearer than the predicted motion (an agent at its goal that pushes
against a wall beside it has nowhere better to go). A surprised episode then takes ``steps`` steps at full
speed instead of its plan, and its next re-plan starts from where that leaves it. The check costs one predictor
call per step. Where the exploration goes (``explore``; draws come from the actor's seeded generator):

- ``random``: one random direction per surprise;
- ``back_off``: away from the move that failed, turned 45 degrees to the episode's side (drawn at its first
  surprise, then kept). Pressed against a wall, the agent slides off it and along it, always the same way, so
  repeated surprises walk it along the wall until the plan finds a way round (a door): a wall follower, like
  the bug algorithms of robot navigation. A random direction points back into the wall half the time, and
  successive ones cancel out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from amia.infra.validate import at_least, one_of, within


@dataclass
class SurpriseConfig:
    """``enabled``: watch for surprise at all (None: the actor's default, ``AgentConfig.watches_surprise``);
    ``every``: the window, in steps (0: the actor's re-plan interval);
    ``ratio``: perceived motion under this fraction of the predicted motion is a surprise; ``command``: the least
    net commanded displacement, as a fraction of ``every * bound``, for the test to apply (an agent that asked
    to stay put cannot be surprised that it did); ``steps``: exploratory steps per surprise; ``explore``: where
    they go, ``random`` or ``back_off`` (module docstring; 2-D actions)."""

    enabled: bool | None = None
    every: int = 0
    ratio: float = 0.3
    command: float = 0.3
    steps: int = 4
    explore: str = "random"

    def __post_init__(self):
        at_least(self, 0, "every")
        at_least(self, 1, "steps")
        one_of(self, "explore", EXPLORE)
        within(self, "ratio", 0, 1, open_low=True)
        within(self, "command", 0, 1)


EXPLORE = ("random", "back_off")


class Surprise:
    """The watch over a batch of ``B`` episodes. ``rollout(s (B, D), actions (B, T, A)) -> (B, T, D)`` is the
    world model; ``bound`` the action box's half-width; ``replan_every`` the actor's re-plan interval (the window
    when ``cfg.every`` is 0). Call ``step`` once per time step, in order."""

    def __init__(self, cfg: SurpriseConfig, rollout: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 bound: float, generator: torch.Generator, replan_every: int = 4):
        self.cfg, self.rollout, self.bound, self.generator = cfg, rollout, bound, generator
        self.every = cfg.every or replan_every
        self.start: torch.Tensor | None = None  # (B, D): the state perceived at the window's start
        self.executed: list[torch.Tensor] = []  # the window's executed actions, each (B, A)
        self.left: torch.Tensor | None = None  # (B,) exploratory steps left
        self.direction: torch.Tensor | None = None  # (B, A) the exploratory action
        self.side: torch.Tensor | None = None  # (B,) +1 / -1: the side ``back_off`` turns to
        self.surprises = 0
        self.explored_steps = 0

    @torch.no_grad()
    def surprised(self, s: torch.Tensor, goal: torch.Tensor | None = None,
                  has_goal: torch.Tensor | None = None) -> torch.Tensor:
        """``(B,)`` bool: the window that ends at perceived states ``s (B, D)`` went against the prediction, and
        the episode is not settling at its goal state ``goal (B, D)`` (where ``has_goal (B,)``, default all)."""
        actions = torch.stack(self.executed, dim=1)  # (B, every, A)
        predicted = self.rollout(self.start, actions)[:, -1]
        want = (predicted - self.start).pow(2).mean(-1)
        moved = (s - self.start).pow(2).mean(-1)
        asked = actions.sum(1).norm(dim=-1) / (actions.shape[1] * self.bound)
        out = (asked >= self.cfg.command) & (moved < self.cfg.ratio * want)
        if goal is not None:
            settling = (s - goal).pow(2).mean(-1) < want
            out &= ~(settling if has_goal is None else settling & has_goal)
        return out

    def exploration(self, planned: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """The exploratory action ``(B, A)`` of newly surprised episodes (``explore``, module docstring)."""
        g, dev = self.generator, planned.device
        if self.cfg.explore == "random":
            d = torch.rand(planned.shape, generator=g, device=dev) * 2 - 1
        else:
            if planned.shape[-1] != 2:
                raise ValueError(f"surprise.explore=back_off turns in the plane: it needs 2-D actions, got {planned.shape[-1]}-D")
            if self.side is None:
                self.side = torch.where(torch.rand(new.shape, generator=g, device=dev) < 0.5, 1.0, -1.0)
            back = -torch.stack(self.executed, dim=1).sum(1)  # away from the move that failed
            c, s = 0.7071, 0.7071 * self.side
            d = torch.stack([c * back[:, 0] - s * back[:, 1], s * back[:, 0] + c * back[:, 1]], dim=-1)
        return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-6) * self.bound

    def step(self, s: torch.Tensor, planned: torch.Tensor, t: int, goal: torch.Tensor | None = None,
             has_goal: torch.Tensor | None = None) -> torch.Tensor:
        """The action ``(B, A)`` to execute at step ``t`` from perceived states ``s (B, D)``: ``planned`` unless
        the episode is exploring after a surprise (``goal``, ``has_goal``: as in ``surprised``)."""
        if not self.cfg.enabled:
            return planned
        if t % self.every == 0:
            if self.start is not None and len(self.executed) == self.every:
                new = self.surprised(s, goal, has_goal)
                if new.any():
                    self.surprises += int(new.sum())
                    d = self.exploration(planned, new)
                    self.direction = d if self.direction is None else torch.where(new[:, None], d, self.direction)
                    fresh = torch.where(new, self.cfg.steps, 0)
                    self.left = fresh if self.left is None else torch.maximum(self.left, fresh)
            self.start, self.executed = s, []
        a = planned
        if self.left is not None:
            exploring = self.left > 0
            if exploring.any():
                a = torch.where(exploring[:, None], self.direction, planned)
                self.explored_steps += int(exploring.sum())
            self.left = (self.left - 1).clamp_min(0)
        self.executed.append(a)
        return a


__all__ = ["Surprise", "SurpriseConfig"]
