"""The gust world ``amia/Gust-v0``: aleatoric uncertainty with several distinct outcomes (Sec. 4.8, Sec. 5).

One open room (border walls only) crossed by a vertical gust band. After the agent's own move, if its new x lies
strictly inside the band, a gust pushes it in y: down by ``push`` px with probability ``probs[0]``, up with
probability ``probs[1]``; the push moves like any move (it stops at the border). Nothing visible decides the
direction, so the same frame and action have two futures: a world model that predicts one next state must
average them, one with a latent variable can keep both (Sec. 4.8). The band is drawn faintly in the walls
channel (value ``band_value``; walls 255). The state is ``(x, y)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amia.envs.geometry import PointWorld, border_rectangles, move_points, sample_free_points, wall_layer

GUST_STATE_NAMES = ("x", "y")


@dataclass(frozen=True)
class GustSpec:
    """Geometry and physics of the gust world; lengths in pixels. ``band``: the gust band's x range;
    ``probs``: probabilities of a push down (+y) and up (-y). Evaluation pairs start with x in
    ``start_x_range`` and aim at x in ``goal_x_range``, y of each uniform in ``eval_y_range``."""

    size: int = 64
    border: float = 2.0
    agent_radius: float = 1.0
    agent_sigma: float = 1.2
    max_step: float = 2.45
    band: tuple[float, float] = (28.0, 36.0)
    push: float = 10.0
    probs: tuple[float, float] = (0.7, 0.3)
    band_value: int = 60
    max_steps: int = 100
    start_x_range: tuple[float, float] = (6.0, 20.0)
    goal_x_range: tuple[float, float] = (44.0, 58.0)
    eval_y_range: tuple[float, float] = (6.0, 58.0)

    def __post_init__(self):
        if len(self.probs) != 2 or min(self.probs) < 0 or abs(sum(self.probs) - 1) > 1e-9:
            raise ValueError(f"probs must be two probabilities (down, up) summing to 1, got {self.probs}")
        if not self.border < self.band[0] < self.band[1] < self.size - self.border:
            raise ValueError(f"band must be an x range inside the room, got {self.band}")
        if self.push <= 0:
            raise ValueError(f"push must be > 0, got {self.push}")
        if not 0 < self.band_value < 255:
            raise ValueError(f"band_value must lie in (0, 255), got {self.band_value}")


class GustWorld(PointWorld):
    """Many episodes of the gust world at once: ``reset``, ``step``, ``set_state``, ``render``, ``outcomes``.

    Frames ``uint8 (B, 2, H, W)`` (agent; walls 255 and the band ``band_value``); state ``(x, y)``.
    """

    state_names = GUST_STATE_NAMES

    def __init__(self, num_envs: int, spec: GustSpec | None = None, seed: int | None = None,
                 evaluation: bool = False):
        super().__init__(num_envs, spec or GustSpec(), seed, evaluation)
        s = self.spec
        layout = border_rectangles(s.size, s.border)
        self.rects = np.broadcast_to(layout, (num_envs, *layout.shape))
        band = np.array([[[s.band[0], 0.0, s.band[1], float(s.size)]]])
        walls = wall_layer(layout[None], self._grid)[0]
        self._wall_layer = np.where(walls > 0, walls, np.where(wall_layer(band, self._grid)[0] > 0, s.band_value, 0)
                                    ).astype(np.uint8)

    @property
    def state(self) -> np.ndarray:
        """True state ``float32 (B, 2)``: ``(x, y)``."""
        return self.pos.astype(np.float32)

    def in_band(self, pos: np.ndarray) -> np.ndarray:
        """Whether each position's x lies strictly inside the gust band, ``bool (B,)``."""
        lo, hi = self.spec.band
        return (pos[:, 0] > lo) & (pos[:, 0] < hi)

    def _futures(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every next position ``(B, 2, 2)`` (pushed down, pushed up) and its probability ``(B, 2)``; outside the
        band both are the agent's own move, with probabilities (1, 0)."""
        s = self.spec
        after = move_points(self.pos, action, self.rects, s.max_step, s.agent_radius)
        band = self.in_band(after)
        futures = np.repeat(after[:, None], 2, axis=1)
        for k, sign in enumerate((1.0, -1.0)):
            push = np.zeros_like(after)
            push[:, 1] = sign * s.push
            pushed = move_points(after, push, self.rects, s.push, s.agent_radius)
            futures[band, k] = pushed[band]
        probs = np.where(band[:, None], np.asarray(s.probs, dtype=np.float64)[None], np.array([[1.0, 0.0]]))
        return futures, probs

    def _check_action(self, action) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (self.num_envs, 2):
            raise ValueError(f"action must have shape ({self.num_envs}, 2), got {action.shape}")
        return action

    def outcomes(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every possible next state ``float32 (B, 2, 2)`` from the current states under ``action (B, 2)``, and
        its probability ``(B, 2)`` (0 pads a single outcome); the world is left as it is."""
        futures, probs = self._futures(self._check_action(action))
        return futures.astype(np.float32), probs

    def step(self, action: np.ndarray) -> tuple[np.ndarray, dict]:
        """The agent's own move, then a gust inside the band: down with ``probs[0]``, else up."""
        futures, _ = self._futures(self._check_action(action))
        up = (self.rng.random(self.num_envs) >= self.spec.probs[0]).astype(np.int64)
        self.pos = futures[np.arange(self.num_envs), up]
        return self.render(), {"state": self.state}

    def sample_free(self, rng: np.random.Generator, lo, hi, n: int | None = None) -> np.ndarray:
        """Uniform free positions ``(n, 2)`` in the box ``[lo, hi]``."""
        n = self.num_envs if n is None else n
        return sample_free_points(rng, np.asarray(lo, float), np.asarray(hi, float),
                                  np.broadcast_to(self.rects[:1], (n, *self.rects.shape[1:])), self.spec.agent_radius)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        """Start every episode at a uniform free position."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        s = self.spec
        r = s.border + s.agent_radius
        self.pos = self.sample_free(self.rng, (r, r), (s.size - r, s.size - r))
        return self.render(), {"state": self.state}

    def set_state(self, state: np.ndarray) -> tuple[np.ndarray, dict]:
        """Put every episode at a given position ``(B, 2)``."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (self.num_envs, 2):
            raise ValueError(f"state must have shape ({self.num_envs}, 2) (x, y), got {state.shape}")
        return self._place(state)


def gust_evaluation_set(spec: GustSpec, episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded start/goal positions ``float32 (N, 2)``: start left of the band, goal right of it (x in the spec's
    ranges), y of each uniform in ``eval_y_range``; crossing the band means facing the gust."""
    world = GustWorld(episodes, spec)
    rng = np.random.default_rng([seed, 2024])
    y0, y1 = spec.eval_y_range
    start = world.sample_free(rng, (spec.start_x_range[0], y0), (spec.start_x_range[1], y1))
    goal = world.sample_free(rng, (spec.goal_x_range[0], y0), (spec.goal_x_range[1], y1))
    return {"start": start.astype(np.float32), "goal": goal.astype(np.float32)}
