"""Batched two-room pixel worlds (the PLDM / eb_jepa "two rooms" world), vectorised in numpy.

The world is a square frame with a border and a vertical wall across the middle with one door. A point
agent moves by a continuous 2-D action, clipped per coordinate; a move that would cross a wall stops at the
wall (``amia.envs.geometry``). Observations are two uint8 channels: the agent (a small Gaussian blob) and the walls.

Coordinates are pixels: x grows to the right, y grows downward, the centre of pixel (i, j) is (j+0.5, i+0.5).
The true state of one episode is ``(x, y, wall_x, door_y)`` (wall centre x, door centre y).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amia.envs.geometry import PointWorld, f32, sample_free_points, wall_layer

STATE_NAMES = ("x", "y", "wall_x", "door_y")


@dataclass(frozen=True)
class RoomsSpec:
    """Geometry and physics of a rooms world; every length in pixels. ``max_steps``: the episode budget
    (Gymnasium's time limit and the evaluation protocol's steps)."""

    size: int = 64
    border: float = 2.0
    wall_thickness: float = 3.0
    door_height: float = 8.0
    agent_radius: float = 1.0
    agent_sigma: float = 1.2
    max_step: float = 2.45
    wall_x: float = 32.0
    door_y: float = 32.0
    random_layout: bool = False
    wall_x_range: tuple[float, float] = (20.0, 44.0)
    door_y_range: tuple[float, float] = (14.0, 50.0)
    max_steps: int = 200


def wall_rectangles(spec: RoomsSpec, wall_x: np.ndarray, door_y: np.ndarray) -> np.ndarray:
    """Obstacles of each episode as rectangles ``(B, 6, 4)`` of ``(x0, y0, x1, y1)``."""
    b = wall_x.shape[0]
    s, t, h = float(spec.size), spec.border, spec.wall_thickness / 2
    rects = np.empty((b, 6, 4), dtype=np.float64)
    rects[:, 0] = (0, 0, t, s)  # left border
    rects[:, 1] = (s - t, 0, s, s)  # right border
    rects[:, 2] = (0, 0, s, t)  # top border
    rects[:, 3] = (0, s - t, s, s)  # bottom border
    half_door = spec.door_height / 2
    rects[:, 4] = np.stack([wall_x - h, np.zeros(b), wall_x + h, door_y - half_door], axis=1)
    rects[:, 5] = np.stack([wall_x - h, door_y + half_door, wall_x + h, np.full(b, s)], axis=1)
    return rects


class RoomsWorld(PointWorld):
    """Many episodes of a rooms world at once: ``reset``, ``step``, ``set_state``, ``render``.

    Arrays are batched over episodes: positions ``(B, 2)``, actions ``(B, 2)``, frames ``uint8 (B, 2, H, W)``.
    """

    state_names = STATE_NAMES

    def __init__(self, num_envs: int, spec: RoomsSpec | None = None, seed: int | None = None,
                 evaluation: bool = False):
        super().__init__(num_envs, spec or RoomsSpec(), seed, evaluation)
        self.wall_x = np.full(num_envs, self.spec.wall_x)
        self.door_y = np.full(num_envs, self.spec.door_y)
        self._set_layout(self.wall_x, self.door_y)

    @property
    def state(self) -> np.ndarray:
        """True state ``float32 (B, 4)``: ``(x, y, wall_x, door_y)``."""
        return np.stack([self.pos[:, 0], self.pos[:, 1], self.wall_x, self.door_y], axis=1).astype(np.float32)

    def _set_layout(self, wall_x: np.ndarray, door_y: np.ndarray) -> None:
        self.wall_x, self.door_y = f32(wall_x), f32(door_y)
        self.rects = wall_rectangles(self.spec, self.wall_x, self.door_y)
        self._wall_layer = wall_layer(self.rects, self._grid)

    def sample_layout(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Wall centre x and door centre y for ``n`` episodes (fixed unless ``random_layout``)."""
        s = self.spec
        if not s.random_layout:
            return np.full(n, s.wall_x), np.full(n, s.door_y)
        return rng.uniform(*s.wall_x_range, size=n), rng.uniform(*s.door_y_range, size=n)

    def sample_free(self, rects: np.ndarray, rng: np.random.Generator, room: np.ndarray | None = None) -> np.ndarray:
        """Uniform free positions, one per rectangle set; ``room`` -1 / +1 picks left / right of the wall."""
        s = self.spec
        lo, hi = s.border + s.agent_radius, s.size - s.border - s.agent_radius

        def on_its_side(cand: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return np.sign(cand[:, 0] - (rects[idx, 4, 0] + rects[idx, 4, 2]) / 2) == room[idx]

        return sample_free_points(rng, np.full(2, lo), np.full(2, hi), rects, s.agent_radius,
                                  None if room is None else on_its_side)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        """Start every episode: a new layout (if random) and a uniform free position."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._set_layout(*self.sample_layout(self.num_envs, self.rng))
        self.pos = self.sample_free(self.rects, self.rng)
        return self.render(), {"state": self.state}

    def set_state(self, state: np.ndarray) -> tuple[np.ndarray, dict]:
        """Put every episode in a given state ``(B, 2)`` (position) or ``(B, 4)`` (position and layout)."""
        state = np.asarray(state, dtype=np.float64)
        if state.ndim != 2 or state.shape[0] != self.num_envs or state.shape[1] not in (2, 4):
            raise ValueError(f"state must have shape ({self.num_envs}, 2) or ({self.num_envs}, 4), got {state.shape}")
        if state.shape[1] == 4:
            self._set_layout(state[:, 2], state[:, 3])
        return self._place(state[:, :2])

    def room_of(self, pos: np.ndarray) -> np.ndarray:
        """-1 for the left room, +1 for the right room (relative to each episode's wall)."""
        return np.where(pos[:, 0] < self.wall_x, -1, 1)
