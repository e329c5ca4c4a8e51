"""Shared helpers of the world tests: random actions of every kind and an independent wall-crossing check."""

from __future__ import annotations

import numpy as np

from amia.envs.geometry import inside_obstacle


def random_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """A mix of huge (clipped), ordinary, axis-aligned, tiny and zero actions."""
    a = rng.uniform(-10.0, 10.0, size=(n, 2))
    kind = rng.integers(0, 5, size=n)
    a[kind == 1] = rng.uniform(-2.45, 2.45, size=(int(np.sum(kind == 1)), 2))
    axis = rng.integers(0, 2, size=n)
    a[kind == 2, axis[kind == 2]] = 0.0  # axis-aligned
    a[kind == 3] *= 1e-3  # tiny
    a[rng.random(n) < 0.02] = 0.0
    return a


def segment_crosses_obstacle(old: np.ndarray, new: np.ndarray, rects: np.ndarray, margin: float,
                             samples: int = 51) -> np.ndarray:
    """Independent of the env's slab test: sample points along old -> new and test each one."""
    s = np.linspace(0.0, 1.0, samples)
    pts = old[:, None, :] + s[None, :, None] * (new - old)[:, None, :]
    inside = inside_obstacle(pts.reshape(-1, 2), np.repeat(rects, samples, axis=0), margin)
    return inside.reshape(len(old), samples).any(axis=1)
