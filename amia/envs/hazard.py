"""The hazard world ``amia/Hazard-v0``: risk, a rare catastrophic outcome (Sec. 4.8, Sec. 5).

One open room with a walkable pit along the top border (drawn at ``pit_value`` in the walls channel). Below the pit
lies a gust zone (``zone``): after the agent's own move, an agent in the zone is pushed up by ``push`` px with
probability ``gust_prob`` per step, which lands it in the pit. Whenever the agent's centre lies strictly inside the
pit (by its own move or a push) it has fallen: it stays there for the rest of the episode (actions are ignored, no
gusts) and the frame keeps showing it there. The straight way between the evaluation set's starts and goals
crosses the zone (about 12 steps: a fall in about one crossing in six); the safe way dips below the zone, a few
steps longer. An agent that plans on the expected cost may take the risk; one that weighs the worst futures does
not. The state is ``(x, y, fallen)`` with ``fallen`` 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amia.envs.geometry import PointWorld, border_rectangles, f32, move_points, sample_free_points, wall_layer

HAZARD_STATE_NAMES = ("x", "y", "fallen")


@dataclass(frozen=True)
class HazardSpec:
    """Geometry and physics of the hazard world; lengths in pixels. ``pit`` and the gust ``zone``: ``(x0, y0, x1,
    y1)``; ``gust_prob``: probability per step of a push of ``push`` px up, into the pit, in the zone. Evaluation
    pairs start in the box ``start_box`` and aim at ``goal_box`` (both ``(x0, y0, x1, y1)``)."""

    size: int = 64
    border: float = 2.0
    agent_radius: float = 1.0
    agent_sigma: float = 1.2
    max_step: float = 2.45
    pit: tuple[float, float, float, float] = (18.0, 2.5, 46.0, 10.0)
    zone: tuple[float, float, float, float] = (18.0, 10.0, 46.0, 30.0)
    gust_prob: float = 0.015
    push: float = 20.0
    pit_value: int = 128
    max_steps: int = 150
    start_box: tuple[float, float, float, float] = (5.0, 12.0, 12.0, 20.0)
    goal_box: tuple[float, float, float, float] = (52.0, 12.0, 59.0, 20.0)

    def __post_init__(self):
        x0, y0, x1, y1 = self.pit
        if not self.border < x0 < x1 < self.size - self.border or not self.border < y0 < y1 < self.size - self.border:
            raise ValueError(f"pit must be a rectangle (x0, y0, x1, y1) inside the room, got {self.pit}")
        if not 0 <= self.gust_prob <= 1:
            raise ValueError(f"gust_prob must lie in [0, 1], got {self.gust_prob}")
        zx0, zy0, zx1, zy1 = self.zone
        if not (x0 <= zx0 < zx1 <= x1 and zy0 >= y1 and zy1 - self.push <= y1):
            raise ValueError(f"the gust zone {self.zone} must lie below the pit {self.pit}, within its x range, and "
                             f"a push of {self.push} px up must carry an agent anywhere in it into the pit")
        if not 0 < self.pit_value < 255:
            raise ValueError(f"pit_value must lie in (0, 255), got {self.pit_value}")


class HazardWorld(PointWorld):
    """Many episodes of the hazard world at once: ``reset``, ``step``, ``set_state``, ``render``, ``outcomes``.

    Frames ``uint8 (B, 2, H, W)`` (agent; walls 255 and the pit ``pit_value``); state ``(x, y, fallen)``;
    ``failed`` is ``fallen``.
    """

    state_names = HAZARD_STATE_NAMES
    failure_name = "hazard"

    def __init__(self, num_envs: int, spec: HazardSpec | None = None, seed: int | None = None,
                 evaluation: bool = False):
        super().__init__(num_envs, spec or HazardSpec(), seed, evaluation)
        s = self.spec
        layout = border_rectangles(s.size, s.border)
        self.rects = np.broadcast_to(layout, (num_envs, *layout.shape))
        walls = wall_layer(layout[None], self._grid)[0]
        pit = wall_layer(np.array([[s.pit]], dtype=np.float64), self._grid)[0]
        self._wall_layer = np.where(walls > 0, walls, np.where(pit > 0, s.pit_value, 0)).astype(np.uint8)
        self.fallen = np.zeros(num_envs, dtype=bool)

    @property
    def state(self) -> np.ndarray:
        """True state ``float32 (B, 3)``: ``(x, y, fallen)``."""
        return np.concatenate([self.pos, self.fallen[:, None]], axis=1).astype(np.float32)

    @property
    def failed(self) -> np.ndarray:
        return self.fallen.copy()

    def in_pit(self, pos: np.ndarray) -> np.ndarray:
        """Whether each position ``(B, 2)`` lies strictly inside the pit."""
        x0, y0, x1, y1 = self.spec.pit
        return (pos[:, 0] > x0) & (pos[:, 0] < x1) & (pos[:, 1] > y0) & (pos[:, 1] < y1)

    def in_zone(self, pos: np.ndarray) -> np.ndarray:
        """Whether each position ``(B, 2)`` lies strictly inside the gust zone."""
        x0, y0, x1, y1 = self.spec.zone
        return (pos[:, 0] > x0) & (pos[:, 0] < x1) & (pos[:, 1] > y0) & (pos[:, 1] < y1)

    def _futures(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Next positions ``(B, 2, 2)`` (no gust, gust), their fallen flags ``(B, 2)`` and probabilities ``(B, 2)``."""
        s = self.spec
        after = move_points(self.pos, action, self.rects, s.max_step, s.agent_radius)
        after[self.fallen] = self.pos[self.fallen]  # a fallen agent stays where it fell
        gusty = ~self.fallen & ~self.in_pit(after) & self.in_zone(after)
        push = np.zeros_like(after)
        push[:, 1] = -s.push
        pushed = np.where(gusty[:, None], move_points(after, push, self.rects, s.push, s.agent_radius), after)
        futures = np.stack([after, pushed], axis=1)
        fallen = np.stack([self.fallen | self.in_pit(after), self.fallen | self.in_pit(pushed)], axis=1)
        probs = np.where(gusty[:, None], np.array([[1 - s.gust_prob, s.gust_prob]]), np.array([[1.0, 0.0]]))
        return futures, fallen, probs

    def _check_action(self, action) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (self.num_envs, 2):
            raise ValueError(f"action must have shape ({self.num_envs}, 2), got {action.shape}")
        return action

    def outcomes(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every possible next state ``float32 (B, 2, 3)`` (no gust, gust) from the current states under
        ``action (B, 2)``, and its probability ``(B, 2)`` (0 pads a single outcome); the world is left as it is."""
        futures, fallen, probs = self._futures(self._check_action(action))
        return np.concatenate([futures, fallen[..., None]], axis=-1).astype(np.float32), probs

    def step(self, action: np.ndarray) -> tuple[np.ndarray, dict]:
        """The agent's own move (none once fallen), then in the gust zone a push into the pit with ``gust_prob``."""
        futures, fallen, _ = self._futures(self._check_action(action))
        gust = (self.rng.random(self.num_envs) < self.spec.gust_prob).astype(np.int64)
        idx = np.arange(self.num_envs)
        self.pos, self.fallen = futures[idx, gust], fallen[idx, gust]
        return self.render(), {"state": self.state}

    def sample_free(self, rng: np.random.Generator, lo, hi, n: int | None = None) -> np.ndarray:
        """Uniform free positions ``(n, 2)`` in the box ``[lo, hi]``, outside the pit."""
        n = self.num_envs if n is None else n
        return sample_free_points(rng, np.asarray(lo, float), np.asarray(hi, float),
                                  np.broadcast_to(self.rects[:1], (n, *self.rects.shape[1:])), self.spec.agent_radius,
                                  keep=lambda cand, idx: ~self.in_pit(cand))

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        """Start every episode at a uniform free position outside the pit, not fallen."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        s = self.spec
        r = s.border + s.agent_radius
        self.pos = self.sample_free(self.rng, (r, r), (s.size - r, s.size - r))
        self.fallen = np.zeros(self.num_envs, dtype=bool)
        return self.render(), {"state": self.state}

    def set_state(self, state: np.ndarray) -> tuple[np.ndarray, dict]:
        """Put every episode in a given state ``(B, 3)`` ``(x, y, fallen)``, or at a position ``(B, 2)``; an agent
        whose centre is strictly inside the pit has fallen whatever its flag says."""
        state = np.asarray(state, dtype=np.float64)
        if state.ndim != 2 or state.shape[0] != self.num_envs or state.shape[1] not in (2, 3):
            raise ValueError(f"state must have shape ({self.num_envs}, 2) (x, y) or ({self.num_envs}, 3) "
                             f"(x, y, fallen), got {state.shape}")
        flag = state[:, 2] if state.shape[1] == 3 else np.zeros(self.num_envs)
        if not np.all((flag == 0) | (flag == 1)):
            raise ValueError(f"fallen must be 0 or 1, got {np.unique(flag)[:10].tolist()}")
        self._place(state[:, :2])
        self.fallen = (flag == 1) | self.in_pit(f32(state[:, :2]))
        return self.render(), {"state": self.state}


def hazard_evaluation_set(spec: HazardSpec, episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded start/goal states ``float32 (N, 3)`` (not fallen): start uniform in ``start_box``, goal uniform in
    ``goal_box``, on either side of the gust zone below the pit."""
    world = HazardWorld(episodes, spec)
    rng = np.random.default_rng([seed, 2024])
    pairs = {}
    for key, box in (("start", spec.start_box), ("goal", spec.goal_box)):
        pos = world.sample_free(rng, box[:2], box[2:])
        pairs[key] = np.concatenate([pos, np.zeros((episodes, 1))], axis=1).astype(np.float32)
    return pairs
