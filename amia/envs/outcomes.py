"""The true distribution of next states of the stochastic worlds (Sec. 4.8): what a world model with a latent
variable should cover, for tests and benchmarks."""

from __future__ import annotations

import numpy as np


def true_outcomes(world, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every possible next state ``float32 (B, M, S)`` from ``world``'s current states under ``action (B, 2)``, and
    its probability ``(B, M)`` (rows sum to 1; 0 pads where fewer outcomes exist), without changing the world.

    M = 2 in the gust and hazard worlds and in the chaser world's evaluation (pursuit) mode; M = 8 for the chaser
    wandering at random (data collection). A deterministic world (rooms, maze) has one outcome, padded to M = 2.
    """
    if hasattr(world, "outcomes"):
        return world.outcomes(action)
    twin = type(world)(world.num_envs, world.spec)
    twin.set_state(np.asarray(world.state, dtype=np.float64))
    _, info = twin.step(action)
    states = np.repeat(info["state"][:, None], 2, axis=1)
    return states, np.tile([1.0, 0.0], (world.num_envs, 1))


__all__ = ["true_outcomes"]
