"""Gymnasium wrapper: one episode of a built-in pixel world (rooms or maze) behind the standard ``Env`` API."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from amia.envs import WorldSpec, world_for_spec
from amia.envs.rooms import RoomsSpec


class RoomsEnv(gym.Env):
    """``gymnasium.make("amia/TwoRooms-v0")``: reward-free; ``info["state"]`` is the world's state: ``(x, y, wall_x,
    door_y)`` in a rooms world, ``(x, y)`` in the maze (``gymnasium.make("amia/Maze-v0")``).

    ``reset(options={"state": s})`` starts from a given state (2 numbers, or 4 in a rooms world).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, spec: WorldSpec | None = None, render_mode: str | None = None):
        self.world = world_for_spec(spec or RoomsSpec(), 1)
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
        return obs[0], {"state": info["state"][0]}

    def step(self, action):
        obs, info = self.world.step(np.asarray(action, dtype=np.float64).reshape(1, 2))
        return obs[0], 0.0, False, False, {"state": info["state"][0]}

    def render(self) -> np.ndarray:
        """RGB picture ``(H, W, 3)``: walls grey, agent red."""
        frame = self.world.render()[0]
        rgb = np.zeros(frame.shape[1:] + (3,), dtype=np.uint8)
        rgb[..., :] = (frame[1] // 2)[..., None]
        rgb[..., 0] = np.maximum(rgb[..., 0], frame[0])
        return rgb
