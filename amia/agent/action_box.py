"""The action box of a run: the planners search ``[-bound, bound]^A``; any other box is reached through a map.

amia's worlds and many others (``Pendulum-v1``: ``[-2, 2]``) have a symmetric box with one bound for every
dimension, which the planners take as it is. Any other box (``PushT``: ``[0, 512]^2``) is planned in
``[-1, 1]^A``: the actor sees the predictor through ``a -> mid + half * a`` (``BoxedPredictor``) and hands the
world ``mid + half * a`` (``BoxedActor``), so that plans, costs and the policy never meet the env's units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from amia.agent.actor import Actor


@dataclass(frozen=True)
class ActionBox:
    """Per-dimension bounds ``low < high`` of an action space."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self):
        if len(self.low) != len(self.high) or not all(a < b for a, b in zip(self.low, self.high)):
            raise ValueError(f"action box: expected low < high in every dimension, got low {self.low}, high {self.high}")

    @classmethod
    def symmetric(cls, bound: float, dim: int) -> ActionBox:
        return cls((-bound,) * dim, (bound,) * dim)

    @property
    def bound(self) -> float | None:
        """The one bound of a symmetric box (``low = -high``, equal in every dimension); ``None`` for another box."""
        same = all(h == self.high[0] for h in self.high) and all(lo == -h for lo, h in zip(self.low, self.high))
        return self.high[0] if same else None

    def mid_half(self) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = torch.tensor(self.low), torch.tensor(self.high)
        return (high + low) / 2, (high - low) / 2


class BoxedPredictor(nn.Module):
    """A predictor driven by normalised actions ``a`` in ``[-1, 1]^A``: it is given ``mid + half * a``."""

    def __init__(self, predictor: nn.Module, box: ActionBox):
        super().__init__()
        self.inner = predictor
        mid, half = box.mid_half()
        self.register_buffer("centre", mid)
        self.register_buffer("radius", half)  # (``half`` is taken: nn.Module.half)

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.inner(s, self.centre + self.radius * a)

    def rollout(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.inner.rollout(s0, self.centre + self.radius * actions)


class BoxedActor:
    """An actor that plans in ``[-1, 1]^A`` (over a ``BoxedPredictor``) and acts in the env's box."""

    def __init__(self, inner: Actor, box: ActionBox):
        self.inner = inner
        mid, half = box.mid_half()
        self.mid, self.half = mid.numpy(), half.numpy()
        self.periods, self.warmup_steps = inner.periods, inner.warmup_steps

    def reset(self, goal_obs: np.ndarray, seed: int = 0, record: int = 0, **task_inputs) -> None:
        self.inner.reset(goal_obs, seed=seed, record=record, **task_inputs)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return (self.mid + self.half * self.inner.act(obs)).astype(np.float32)

    def report(self) -> dict:
        return self.inner.report()

    def describe(self) -> dict:
        return {**self.inner.describe(), "action_low": list(self.mid - self.half), "action_high": list(self.mid + self.half)}


__all__ = ["ActionBox", "BoxedActor", "BoxedPredictor"]
