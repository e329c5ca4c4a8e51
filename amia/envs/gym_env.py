"""Gymnasium wrapper: one episode of a built-in pixel world (rooms, maze, gust, hazard, chaser) behind the standard
``Env`` API."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from amia.envs import WorldSpec, world_for_spec
from amia.envs.rooms import RoomsSpec


class RoomsEnv(gym.Env):
    """``gymnasium.make("amia/TwoRooms-v0")``: reward-free; ``info["state"]`` is the world's state: ``(x, y, wall_x,
    door_y)`` in a rooms world, ``(x, y)`` in the maze (``gymnasium.make("amia/Maze-v0")``) and the gust world,
    ``(x, y, fallen)`` in the hazard world, ``(x, y, cx, cy, caught)`` in the chaser world (whose chaser pursues
    with ``gymnasium.make("amia/Chaser-v0", evaluation=True)``); ``info["failed"]`` says whether the agent has
    fallen or been caught (the episode goes on, frozen, until the time limit).

    ``reset(options={"state": s})`` starts from a given state (the world's state layout; 2 numbers suffice in the
    rooms, gust and hazard worlds).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, spec: WorldSpec | None = None, render_mode: str | None = None, evaluation: bool = False):
        self.world = world_for_spec(spec or RoomsSpec(), 1, evaluation=evaluation)
        s = self.world.spec
        self.observation_space = gym.spaces.Box(0, 255, self.world.obs_shape, dtype=np.uint8)
        self.action_space = gym.spaces.Box(-s.max_step, s.max_step, (2,), dtype=np.float32)
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.world.rng = self.np_random
        obs, info = self.world.reset()
        if options and "state" in options:
            obs, info = self.world.set_state(np.asarray(options["state"], dtype=np.float64)[None])
        return obs[0], self._info(info)

    def step(self, action):
        obs, info = self.world.step(np.asarray(action, dtype=np.float64).reshape(1, 2))
        return obs[0], 0.0, False, False, self._info(info)

    def _info(self, info: dict) -> dict:
        return {"state": info["state"][0], "failed": bool(self.world.failed[0])}

    def render(self) -> np.ndarray:
        """RGB picture ``(H, W, 3)``: walls grey (gust band and pit fainter), agent red, chaser blue."""
        frame = self.world.render()[0]
        rgb = np.zeros(frame.shape[1:] + (3,), dtype=np.uint8)
        rgb[..., :] = (frame[1] // 2)[..., None]
        rgb[..., 0] = np.maximum(rgb[..., 0], frame[0])
        if len(frame) > 2:
            rgb[..., 2] = np.maximum(rgb[..., 2], frame[2])
        return rgb
