"""Collection policies: map the current true states to actions, for many episodes at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DriftingRandomWalk:
    """PLDM's exploration: a heading that drifts by von Mises noise, with random step lengths.

    ``kappa`` is the concentration of the heading change (larger: straighter paths).
    """

    kappa: float = 5.0
    min_step: float = 0.0
    max_step: float = 2.45

    def reset(self, num_envs: int, rng: np.random.Generator) -> None:
        self.heading = rng.uniform(-np.pi, np.pi, size=num_envs)

    def __call__(self, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.heading = self.heading + rng.vonmises(0.0, self.kappa, size=self.heading.shape)
        length = rng.uniform(self.min_step, self.max_step, size=self.heading.shape)
        return np.stack([np.cos(self.heading), np.sin(self.heading)], axis=1) * length[:, None]


@dataclass
class UniformRandom:
    """Independent uniform actions in the box ``[-max_step, max_step]^2``."""

    max_step: float = 2.45

    def reset(self, num_envs: int, rng: np.random.Generator) -> None:
        self.num_envs = num_envs

    def __call__(self, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-self.max_step, self.max_step, size=(state.shape[0], 2))


POLICIES = {"drift": DriftingRandomWalk, "uniform": UniformRandom}
