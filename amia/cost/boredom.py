"""Boredom: an intrinsic cost on the places where the agent has lingered without reaching its goal (Sec. 3.2).

With a world model good enough that the planner no longer finds its errors, Mode-2 toward a goal behind a wall
stops where the goal energy is lowest within the horizon: at the wall, level with the goal. Nothing in the
energy says that the door 30 px along the wall is the way (a critic learned from the dataset does not know the
detour either). ``Trail`` keeps the episode's recent perceived states, a short-term memory (Sec. 3); from it,
``Boredom`` charges a plan for the time the agent has already spent near the states it
predicts. Passing through a place costs nothing; sitting at one for more than ``free`` (counted) steps makes
it costly, so the plan leaves for somewhere new, and as each new spot along the wall fills up in turn, the
agent slides along it until the plan finds the door. States within ``gate`` (mean squared distance in state
space) of the goal's state never count: an agent at its goal is not bored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amia.infra.validate import at_least, positive


@dataclass
class BoredomConfig:
    """``weight``: the term's ``u`` (0: off); ``width``: the kernel's width in mean squared state distance (0.1 is
    about 6 px in the rooms worlds); ``free``: the kernel mass (counted states) that costs nothing; ``scale``: the
    mass that costs one unit; ``memory``: how many past steps are kept; ``stride``: every how many of them count;
    ``every``: the term reads every ``every``-th predicted state; ``gate``: states this close to the goal's state
    never count."""

    weight: float = 0.0
    width: float = 0.2
    free: float = 10.0
    scale: float = 10.0
    memory: int = 160
    stride: int = 2
    every: int = 8
    gate: float = 0.1

    def __post_init__(self):
        at_least(self, 0, "weight", "free", "gate")
        positive(self, "width", "scale")
        at_least(self, 1, "memory", "stride", "every")


@dataclass(frozen=True)
class Boredom:
    """``IC_bored``: the time already spent near the predicted states (module docstring).

    ``visited (B, M, D)``: the episode's remembered states, ``counted (B, M)`` 1 where they count. At every
    ``every``-th predicted state ``p``, the kernel mass ``m(p) = sum_j counted_j exp(-msd(p, v_j) / width)``
    (``msd``: mean squared difference over the state's dimensions) costs ``max(m - free, 0) / scale``; the
    energy is the mean over those states.
    """

    visited: torch.Tensor
    counted: torch.Tensor
    width: float = 0.2
    free: float = 10.0
    scale: float = 10.0
    every: int = 8

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        p = states[..., self.every - 1::self.every, :]  # (B, ..., K, D)
        if p.shape[-2] == 0:
            p = states[..., -1:, :]
        flat = p.reshape(p.shape[0], -1, p.shape[-1])
        v = self.visited.to(flat)
        msd = (flat.pow(2).sum(-1)[:, :, None] + v.pow(2).sum(-1)[:, None] - 2 * flat @ v.transpose(1, 2))
        mass = (torch.exp(-(msd / p.shape[-1]).clamp_min(0) / self.width) * self.counted.to(flat)[:, None]).sum(-1)
        return ((mass - self.free).clamp_min(0) / self.scale).reshape(p.shape[:-1]).mean(-1)


class Trail:
    """The last ``cfg.memory`` perceived states of a batch of episodes; ``add`` once per step, ``term`` at each plan."""

    def __init__(self, cfg: BoredomConfig):
        self.cfg = cfg
        self.states: list[torch.Tensor] = []  # each (B, D), oldest first

    def add(self, s: torch.Tensor) -> None:
        self.states.append(s.detach())
        if len(self.states) > self.cfg.memory:
            self.states.pop(0)

    def term(self, goal: torch.Tensor) -> Boredom | None:
        """The boredom term for goal states ``(B, D)``, or None with nothing remembered yet."""
        kept = self.states[::-1][1::self.cfg.stride]  # the current state is where the plan starts: not counted
        if not kept:
            return None
        visited = torch.stack(kept, dim=1)  # (B, M, D)
        counted = ((visited - goal[:, None]).pow(2).mean(-1) > self.cfg.gate).float()
        c = self.cfg
        return Boredom(visited, counted, c.width, c.free, c.scale, c.every)


__all__ = ["Boredom", "BoredomConfig", "Trail"]
