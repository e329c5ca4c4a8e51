"""The action box of a run: the planners search ``[-bound, bound]^A``; a data file's box is reached through a map.

amia's worlds give their actions to the predictor as they are, and the planners search their symmetric box.
A model trained on a file that declares its box (any Gymnasium env: ``[-2, 2]`` for Pendulum, ``[0, 512]^2``
for PushT's target positions) works in ``[-1, 1]^A`` (``amia.models.jepa.JEPA.normalise``): its actor plans
there and hands the world ``mid + half * a`` (``BoxedActor``), so that plans, costs and the policy never meet
the env's units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from amia.agent.actor import Actor


@dataclass(frozen=True)
class ActionBox:
    """Per-dimension bounds ``low < high`` of an action space."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self):
        if len(self.low) != len(self.high) or not all(a < b for a, b in zip(self.low, self.high)):
            raise ValueError(f"action box: expected low < high in every dimension, got low {self.low}, high {self.high}")

    def mid_half(self) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = torch.tensor(self.low), torch.tensor(self.high)
        return (high + low) / 2, (high - low) / 2


class BoxedActor:
    """An actor that plans in ``[-1, 1]^A`` (a model with an action box) and acts in the env's box."""

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
        low, high = (self.mid - self.half).tolist(), (self.mid + self.half).tolist()
        return {**self.inner.describe(), "action_low": low, "action_high": high}


__all__ = ["ActionBox", "BoxedActor"]
