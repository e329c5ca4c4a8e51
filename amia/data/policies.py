"""Collection policies, for many episodes at once: the built-in worlds' walks map true states to actions; the box
policies act in any Gymnasium ``Box`` action space; ``load_policy("module:name")`` brings a user's own."""

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


@dataclass
class DoorSeekingWalk:
    """The drifting walk, except that in ``door_fraction`` of the episodes it first heads for the door of a rooms
    world (state ``(x, y, wall_x, door_y)``), goes through it, then drifts on from the other side.

    A random walk almost never threads a narrow door whose place changes every episode (93 crossings in
    1,000 Wall-v0 episodes of 100 steps), so a world model learns that the wall blocks but never that the door
    lets through, and every plan through the door looks blocked. This behaviour policy reads the true layout,
    as a scripted demonstrator would; the data stays reward-free and goal-free. Headings are noisy (von Mises,
    ``kappa``) and steps random, so the walks also rub the door's jambs.
    """

    kappa: float = 5.0
    door_fraction: float = 0.5
    max_step: float = 2.45

    def reset(self, num_envs: int, rng: np.random.Generator) -> None:
        self.heading = rng.uniform(-np.pi, np.pi, size=num_envs)
        self.seeking = rng.random(num_envs) < self.door_fraction
        self.side = None

    def __call__(self, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if state.shape[1] != 4:
            raise ValueError(f"the doors policy needs rooms-world states (x, y, wall_x, door_y), got {state.shape[1]} numbers")
        x, y, wall_x, door_y = state.T
        side = np.sign(x - wall_x)
        if self.side is None:
            self.side = side
        self.seeking &= side == self.side  # through the door: drift on from here
        # aim at a point just past the door's mouth on this side until level with the door, then straight across
        level = np.abs(y - door_y) < 2.0
        target_x = np.where(level, wall_x - 6.0 * side, wall_x + 6.0 * side)
        to_door = np.arctan2(door_y - y, target_x - x)
        drift = self.heading + rng.vonmises(0.0, self.kappa, size=self.heading.shape)
        self.heading = np.where(self.seeking, to_door + rng.vonmises(0.0, 4 * self.kappa, size=x.shape), drift)
        length = rng.uniform(0.0, self.max_step, size=x.shape)
        length = np.where(self.seeking, rng.uniform(0.5 * self.max_step, self.max_step, size=x.shape), length)
        return np.stack([np.cos(self.heading), np.sin(self.heading)], axis=1) * length[:, None]


POLICIES = {"drift": DriftingRandomWalk, "uniform": UniformRandom, "doors": DoorSeekingWalk}


@dataclass
class BoxRandom:
    """Uniform actions in the box ``[low, high]`` (per dimension), each held for ``repeat`` steps."""

    low: np.ndarray
    high: np.ndarray
    repeat: int = 1

    def reset(self, num_envs: int, rng: np.random.Generator) -> None:
        self.num_envs, self.t = num_envs, 0

    def __call__(self, obs, rng: np.random.Generator) -> np.ndarray:
        if self.t % self.repeat == 0:
            self.action = rng.uniform(self.low, self.high, size=(self.num_envs, len(self.low)))
        self.t += 1
        return self.action


@dataclass
class BoxSmooth:
    """Temporally smooth noise in the box: ``x <- rho x + sqrt(1 - rho^2) N(0, 1)`` per dimension, and the action
    ``mid + half * tanh(x)``, so that consecutive actions agree (``rho`` near 1) and explore further than white noise."""

    low: np.ndarray
    high: np.ndarray
    rho: float = 0.9

    def reset(self, num_envs: int, rng: np.random.Generator) -> None:
        self.x = rng.standard_normal((num_envs, len(self.low)))

    def __call__(self, obs, rng: np.random.Generator) -> np.ndarray:
        self.x = self.rho * self.x + np.sqrt(1 - self.rho**2) * rng.standard_normal(self.x.shape)
        mid, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        return mid + half * np.tanh(self.x)


BOX_POLICIES = {"random": BoxRandom, "smooth": BoxSmooth}


def load_policy(spec: str, action_space):
    """A user's collection policy named ``module:name``: a callable ``(obs, rng) -> actions (B, A)``, or a class
    built as ``cls(action_space)`` whose instances are; an optional ``reset(num_envs, rng)`` is called first."""
    import importlib

    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"policy {spec!r}: expected 'module:name' or one of {sorted(BOX_POLICIES)}")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"policy {spec!r}: cannot load it ({e})") from None
    policy = obj(action_space) if isinstance(obj, type) else obj
    if not callable(policy):
        raise ValueError(f"policy {spec!r}: expected a callable (obs, rng) -> actions, got {type(policy).__name__}")
    return policy
