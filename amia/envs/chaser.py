"""The chaser world ``amia/Chaser-v0``: an adversary, another agent whose moves the world model must predict
(Sec. 4.8, Sec. 5).

One open room with the agent and a chaser. Each step the agent moves, then the chaser moves ``chaser_speed`` px
in one of 8 compass directions (unit vectors at multiples of 45 degrees), stopping at walls. In data collection
the chaser's direction is uniform at random each step; in evaluation (``evaluation=True``) it pursues greedily,
along the one of the 8 directions closest in angle to the direction from it to the agent. If the two are then
closer than ``capture_radius``, the agent is caught: both stay still for the rest of the episode. The task is
to avoid capture, not to reach a goal (``reaches_goal`` is False). Frames have 3 channels: the agent blob, the
walls, the chaser blob. The state is ``(x, y, cx, cy, caught)`` with ``caught`` 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amia.envs.geometry import (
    PointWorld,
    agent_layer,
    border_rectangles,
    f32,
    inside_obstacle,
    move_points,
    sample_free_points,
    wall_layer,
)

CHASER_STATE_NAMES = ("x", "y", "cx", "cy", "caught")
DIRECTIONS = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], axis=1)  # (8, 2)


@dataclass(frozen=True)
class ChaserSpec:
    """Geometry and physics of the chaser world; lengths in pixels. Evaluation pairs start the agent uniformly in
    ``[eval_lo, eval_hi]^2`` and the chaser ``eval_distance`` px away inside the room."""

    size: int = 64
    border: float = 2.0
    agent_radius: float = 1.0
    agent_sigma: float = 1.2
    max_step: float = 2.45
    chaser_speed: float = 1.5
    capture_radius: float = 4.0
    max_steps: int = 100
    eval_lo: float = 10.0
    eval_hi: float = 54.0
    eval_distance: tuple[float, float] = (20.0, 30.0)

    def __post_init__(self):
        if self.chaser_speed <= 0 or self.capture_radius <= 0:
            raise ValueError(f"chaser_speed and capture_radius must be > 0, got {self.chaser_speed}, "
                             f"{self.capture_radius}")
        if not self.capture_radius < self.eval_distance[0] <= self.eval_distance[1]:
            raise ValueError(f"eval_distance must be a range above capture_radius, got {self.eval_distance}")


def pursuit_direction(agent: np.ndarray, chaser: np.ndarray) -> np.ndarray:
    """Index ``int64 (B,)`` of the compass direction (``DIRECTIONS``) closest in angle to chaser -> agent."""
    d = agent - chaser
    return np.rint(np.arctan2(d[:, 1], d[:, 0]) / (np.pi / 4)).astype(np.int64) % 8


class ChaserWorld(PointWorld):
    """Many episodes of the chaser world at once: ``reset``, ``step``, ``set_state``, ``render``, ``outcomes``.

    Frames ``uint8 (B, 3, H, W)`` (agent, walls, chaser); state ``(x, y, cx, cy, caught)``; ``failed`` is
    ``caught``. ``evaluation``: the chaser pursues instead of wandering.
    """

    channels = 3
    state_names = CHASER_STATE_NAMES
    failure_name = "capture"
    reaches_goal = False

    def __init__(self, num_envs: int, spec: ChaserSpec | None = None, seed: int | None = None,
                 evaluation: bool = False):
        super().__init__(num_envs, spec or ChaserSpec(), seed, evaluation)
        s = self.spec
        layout = border_rectangles(s.size, s.border)
        self.rects = np.broadcast_to(layout, (num_envs, *layout.shape))
        self._wall_layer = wall_layer(layout[None], self._grid)[0]
        self.chaser = np.zeros((num_envs, 2))
        self.caught = np.zeros(num_envs, dtype=bool)

    @property
    def state(self) -> np.ndarray:
        """True state ``float32 (B, 5)``: ``(x, y, cx, cy, caught)``."""
        return np.concatenate([self.pos, self.chaser, self.caught[:, None]], axis=1).astype(np.float32)

    @property
    def failed(self) -> np.ndarray:
        return self.caught.copy()

    def _futures(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The agent's next position ``(B, 2)``, the chaser's next position for each direction ``(B, 8, 2)`` and
        whether each catches the agent ``(B, 8)``; caught episodes stay as they are."""
        s = self.spec
        agent = move_points(self.pos, action, self.rects, s.max_step, s.agent_radius)
        agent[self.caught] = self.pos[self.caught]
        chaser = np.stack([move_points(self.chaser, np.broadcast_to(s.chaser_speed * d, agent.shape), self.rects,
                                       s.chaser_speed, s.agent_radius) for d in DIRECTIONS], axis=1)
        chaser[self.caught] = self.chaser[self.caught, None]
        caught = self.caught[:, None] | (np.linalg.norm(chaser - agent[:, None], axis=-1) < s.capture_radius)
        return agent, chaser, caught

    def _check_action(self, action) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (self.num_envs, 2):
            raise ValueError(f"action must have shape ({self.num_envs}, 2), got {action.shape}")
        return action

    def outcomes(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every possible next state ``float32 (B, M, 5)`` from the current states under ``action (B, 2)`` and its
        probability ``(B, M)``: M = 2 in evaluation (the pursuit is deterministic: one outcome, padded with
        probability 0), M = 8 in data collection (each direction 1/8; a caught episode has one outcome)."""
        agent, chaser, caught = self._futures(self._check_action(action))
        b, idx = self.num_envs, np.arange(self.num_envs)
        if self.evaluation:
            k = pursuit_direction(agent, self.chaser)
            chaser, caught = chaser[idx, k][:, None].repeat(2, 1), caught[idx, k][:, None].repeat(2, 1)
            probs = np.tile([1.0, 0.0], (b, 1))
        else:
            probs = np.where(self.caught[:, None], np.eye(8)[0][None], np.full((b, 8), 1 / 8))
        m = chaser.shape[1]
        states = np.concatenate([np.repeat(agent[:, None], m, 1), chaser, caught[..., None]], axis=-1)
        return states.astype(np.float32), probs

    def step(self, action: np.ndarray) -> tuple[np.ndarray, dict]:
        """The agent moves, then the chaser (pursuing in evaluation, at random otherwise); a capture freezes both."""
        agent, chaser, caught = self._futures(self._check_action(action))
        k = pursuit_direction(agent, self.chaser) if self.evaluation else self.rng.integers(8, size=self.num_envs)
        idx = np.arange(self.num_envs)
        self.pos, self.chaser, self.caught = agent, chaser[idx, k], caught[idx, k]
        return self.render(), {"state": self.state}

    def render(self) -> np.ndarray:
        """Frames ``uint8 (B, 3, H, W)``: the agent blob, the walls, the chaser blob."""
        frames = super().render()
        chaser = agent_layer(self.chaser, self._grid, self.spec.agent_sigma)
        return np.concatenate([frames, chaser[:, None]], axis=1)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        """Start every episode with the agent and the chaser at uniform free positions, farther apart than twice
        the capture radius."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        s = self.spec
        r = s.border + s.agent_radius
        lo, hi = np.full(2, r), np.full(2, s.size - r)
        self.pos = sample_free_points(self.rng, lo, hi, self.rects, s.agent_radius)
        self.chaser = sample_free_points(
            self.rng, lo, hi, self.rects, s.agent_radius,
            keep=lambda cand, idx: np.linalg.norm(cand - self.pos[idx], axis=1) > 2 * s.capture_radius)
        self.caught = np.zeros(self.num_envs, dtype=bool)
        return self.render(), {"state": self.state}

    def set_state(self, state: np.ndarray) -> tuple[np.ndarray, dict]:
        """Put every episode in a given state ``(B, 5)`` ``(x, y, cx, cy, caught)``; two closer than the capture
        radius are caught whatever the flag says."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (self.num_envs, 5):
            raise ValueError(f"state must have shape ({self.num_envs}, 5) (x, y, cx, cy, caught), got {state.shape}")
        flag = state[:, 4]
        if not np.all((flag == 0) | (flag == 1)):
            raise ValueError(f"caught must be 0 or 1, got {np.unique(flag)[:10].tolist()}")
        chaser = f32(state[:, 2:4])
        bad = inside_obstacle(chaser, self.rects, self.spec.agent_radius)
        bad |= np.any((chaser < 0) | (chaser > self.spec.size), axis=1)
        if bad.any():
            raise ValueError(f"chaser positions inside a wall or outside the frame at episodes "
                             f"{np.flatnonzero(bad)[:10].tolist()}")
        self._place(state[:, :2])
        self.chaser = chaser
        self.caught = (flag == 1) | (np.linalg.norm(self.chaser - self.pos, axis=1) < self.spec.capture_radius)
        return self.render(), {"state": self.state}


def chaser_evaluation_set(spec: ChaserSpec, episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded start states ``float32 (N, 5)``: the agent uniform in ``[eval_lo, eval_hi]^2``, the chaser
    ``eval_distance`` px from it in a uniform direction, inside the room, not caught. The goal of each pair is its
    start (the task is to avoid capture, not to reach)."""
    world = ChaserWorld(episodes, spec)
    rng = np.random.default_rng([seed, 2024])
    agent = sample_free_points(rng, np.full(2, spec.eval_lo), np.full(2, spec.eval_hi), world.rects,
                               spec.agent_radius)
    chaser, todo = np.zeros_like(agent), np.ones(episodes, dtype=bool)
    lo, hi = spec.border + spec.agent_radius, spec.size - spec.border - spec.agent_radius
    while todo.any():
        idx = np.flatnonzero(todo)
        d, angle = rng.uniform(*spec.eval_distance, size=idx.size), rng.uniform(-np.pi, np.pi, size=idx.size)
        cand = f32(agent[idx] + d[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1))
        gap = np.linalg.norm(cand - agent[idx], axis=1)
        ok = np.all((cand > lo) & (cand < hi), axis=1) & (gap >= spec.eval_distance[0]) & (gap <= spec.eval_distance[1])
        chaser[idx[ok]] = cand[ok]
        todo[idx[ok]] = False
    start = np.concatenate([agent, chaser, np.zeros((episodes, 1))], axis=1).astype(np.float32)
    return {"start": start, "goal": start.copy()}
