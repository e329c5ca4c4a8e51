"""A point agent among axis-aligned rectangular walls: the physics and rendering shared by the pixel worlds.

Coordinates are pixels: x grows to the right, y grows downward, the centre of pixel (i, j) is (j+0.5, i+0.5).
Obstacles are rectangles ``(B, R, 4)`` of ``(x0, y0, x1, y1)``, one set per episode. Positions are kept
float32-exact (see ``f32``), so a stored state is exactly the world's state.
"""

from __future__ import annotations

import numpy as np


def f32(a) -> np.ndarray:
    """Round to float32 (the precision of the reported and stored state) and keep as float64.

    The worlds keep positions and layouts float32-exact, so a stored state is exactly the world's state:
    ``set_state`` on it reproduces the same frame and never finds it a hair inside a wall.
    """
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def inside_obstacle(pos: np.ndarray, rects: np.ndarray, margin: float) -> np.ndarray:
    """Whether each point ``(B, 2)`` lies strictly inside any of its rectangles grown by ``margin``."""
    lo, hi = rects[..., :2] - margin, rects[..., 2:] + margin
    p = pos[:, None, :]
    return np.any(np.all((p > lo) & (p < hi), axis=-1), axis=-1)


def first_hit_fraction(pos: np.ndarray, move: np.ndarray, rects: np.ndarray, margin: float) -> np.ndarray:
    """Fraction in [0, 1] of ``move`` that each point travels before touching a grown rectangle.

    Slab test of the segment ``pos -> pos + move`` against every rectangle at once; 1 means no hit.
    """
    lo, hi = rects[..., :2] - margin, rects[..., 2:] + margin
    p, d = pos[:, None, :], move[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - p) / d, (hi - p) / d
    moving = d != 0
    inside_slab = (p > lo) & (p < hi)
    t_near = np.where(moving, np.minimum(t1, t2), np.where(inside_slab, -np.inf, np.inf))
    t_far = np.where(moving, np.maximum(t1, t2), np.where(inside_slab, np.inf, -np.inf))
    enter, leave = t_near.max(axis=-1), t_far.min(axis=-1)
    hit = (enter < leave) & (enter >= 0) & (enter <= 1)
    return np.where(hit, enter, 1.0).min(axis=-1)


def move_points(pos: np.ndarray, action: np.ndarray, rects: np.ndarray, max_step: float, radius: float) -> np.ndarray:
    """New float32-exact positions ``(B, 2)``: each point moves by its action clipped per coordinate to
    ``max_step`` (NaN: no move) and stops at the first wall on the way (walls grown by ``radius``)."""
    move = np.clip(np.nan_to_num(action), -max_step, max_step)
    frac = first_hit_fraction(pos, move, rects, radius)
    length = np.linalg.norm(move, axis=1)
    backoff = np.where(frac < 1, 1e-6 / np.maximum(length, 1e-12), 0.0)
    new = f32(pos + move * np.clip(frac - backoff, 0.0, 1.0)[:, None])
    # rounding a stop right at a wall may land a hair inside it: one float32 step back towards the start
    bad = inside_obstacle(new, rects, radius)
    if bad.any():
        old32 = pos[bad].astype(np.float32)
        new[bad] = np.nextafter(new[bad].astype(np.float32), old32).astype(np.float64)
        bad = inside_obstacle(new, rects, radius)
        new[bad] = pos[bad]  # never reached in practice; staying put is always safe
    return new


def sample_free_points(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, rects: np.ndarray, radius: float,
                       keep=None) -> np.ndarray:
    """One uniform point ``(N, 2)`` per obstacle set ``rects (N, R, 4)``, in the box ``[lo, hi]`` (``(2,)`` or
    ``(N, 2)``) and outside every obstacle grown by ``radius``, by rejection; ``keep(points, idx) -> (M,) bool``
    adds a condition on the candidates for episodes ``idx``."""
    n = rects.shape[0]
    lo, hi = np.broadcast_to(lo, (n, 2)), np.broadcast_to(hi, (n, 2))
    out, todo = np.zeros((n, 2)), np.ones(n, dtype=bool)
    while todo.any():
        idx = np.flatnonzero(todo)
        cand = f32(rng.uniform(lo[idx], hi[idx]))
        ok = ~inside_obstacle(cand, rects[idx], radius)
        if keep is not None:
            ok &= keep(cand, idx)
        out[idx[ok]] = cand[ok]
        todo[idx[ok]] = False
    return out


def border_rectangles(size: float, border: float) -> np.ndarray:
    """The four border walls of a ``size`` px square frame, ``(4, 4)`` of ``(x0, y0, x1, y1)``: an open room."""
    s, t = float(size), float(border)
    return np.array([(0, 0, t, s), (s - t, 0, s, s), (0, 0, s, t), (0, s - t, s, s)], dtype=np.float64)


def wall_layer(rects: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Wall channels ``uint8 (B, H, W)``: 255 where a pixel's centre lies strictly inside a rectangle.

    ``centres`` are the pixel centres along one axis (``arange(size) + 0.5``)."""
    c = centres
    x0, y0, x1, y1 = (rects[..., k][:, :, None, None] for k in range(4))
    in_x = (c[None, None, None, :] > x0) & (c[None, None, None, :] < x1)
    covered = in_x & (c[None, None, :, None] > y0) & (c[None, None, :, None] < y1)
    return np.where(covered.any(axis=1), 255, 0).astype(np.uint8)


def agent_layer(pos: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    """Agent channels ``uint8 (B, H, W)``: a Gaussian blob of std ``sigma`` px at each position, peak 255."""
    c, sig2 = centres, 2 * sigma**2
    gx = np.exp(-((c[None, :] - pos[:, 0:1]) ** 2) / sig2)
    gy = np.exp(-((c[None, :] - pos[:, 1:2]) ** 2) / sig2)
    return np.rint(255.0 * gy[:, :, None] * gx[:, None, :]).astype(np.uint8)


class PointWorld:
    """What every batched pixel world shares: a point agent per episode among the walls ``rects (B, R, 4)``.

    A subclass calls ``__init__`` with its spec (``size``, ``agent_radius``, ``agent_sigma``, ``max_step``), then
    sets ``rects`` and ``_wall_layer`` (``(H, W)`` or ``(B, H, W)``) and defines ``state``. Frames are
    ``uint8 (B, 2, H, W)``: channel 0 the agent blob, channel 1 the walls.

    ``evaluation``: the world as the evaluation protocol runs it (only worlds whose other agents act differently
    there use it, e.g. ``amia.envs.chaser``). ``failed`` ``(B,)`` marks episodes that met the world's failure
    (``failure_name``, e.g. "hazard"; None: the world has none); ``reaches_goal`` is False where the task is not to
    reach a goal state but only to avoid failing (Sec. 4.8, Sec. 5: uncertainty and risk).
    """

    channels = 2
    failure_name: str | None = None
    reaches_goal = True

    def __init__(self, num_envs: int, spec, seed: int | None = None, evaluation: bool = False):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.spec, self.num_envs, self.evaluation = spec, num_envs, bool(evaluation)
        self.rng = np.random.default_rng(seed)
        self._grid = np.arange(spec.size) + 0.5  # pixel centres
        self.pos = np.zeros((num_envs, 2))

    @property
    def failed(self) -> np.ndarray:
        """Episodes that met the world's failure, ``bool (B,)``; never in a world without one."""
        return np.zeros(self.num_envs, dtype=bool)

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.spec.size, self.spec.size)

    def _place(self, pos: np.ndarray) -> tuple[np.ndarray, dict]:
        """Put every agent at ``pos (B, 2)``; a clear error for a position inside a wall or outside the frame."""
        pos = f32(pos)
        bad = inside_obstacle(pos, self.rects, self.spec.agent_radius)
        bad |= np.any((pos < 0) | (pos > self.spec.size), axis=1)
        if bad.any():
            raise ValueError(f"positions inside a wall or outside the frame at episodes {np.flatnonzero(bad)[:10].tolist()}")
        self.pos = pos.copy()
        return self.render(), {"state": self.state}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, dict]:
        """Move every agent by its clipped action, stopping at the first wall on the way."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (self.num_envs, 2):
            raise ValueError(f"action must have shape ({self.num_envs}, 2), got {action.shape}")
        self.pos = move_points(self.pos, action, self.rects, self.spec.max_step, self.spec.agent_radius)
        return self.render(), {"state": self.state}

    def render(self) -> np.ndarray:
        """Frames ``uint8 (B, 2, H, W)``: channel 0 the agent blob, channel 1 the walls."""
        agent = agent_layer(self.pos, self._grid, self.spec.agent_sigma)
        return np.stack([agent, np.broadcast_to(self._wall_layer, agent.shape)], axis=1)
