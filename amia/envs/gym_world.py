"""Any Gymnasium environment as a batched world for the episode loop: ``B`` copies put into recorded states,
seen as square frames, stepped together (``amia.agent.episodes.run_episodes``).

A copy whose episode ends (terminated or truncated) stays where it ended: its frame and state no longer change.
"""

from __future__ import annotations

import importlib

import gymnasium as gym
import numpy as np

from amia.envs.hooks import EnvHooks
from amia.envs.pixels import frame_source, resize_frames, state_of


def import_modules(names: list[str]) -> None:
    """Import the modules that register environments (e.g. ``gym_pusht``); a clear error naming a missing one."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ValueError(f"--import {name}: cannot import it ({e})") from None


def make_env(env_id: str, render: bool = False, **kwargs) -> gym.Env:
    """``gymnasium.make`` with a clear error for an unknown id (``render``: ``render_mode="rgb_array"``)."""
    try:
        return gym.make(env_id, **({"render_mode": "rgb_array"} if render else {}), **kwargs)
    except gym.error.Error as e:
        raise ValueError(f"--env {env_id}: {e}") from None


def inspect_env(env_id: str, **kwargs) -> tuple[str, gym.spaces.Space, gym.spaces.Space]:
    """Where the frames of ``env_id`` come from (``amia.envs.pixels.frame_source``), its action space and its
    observation space."""
    env = make_env(env_id, **kwargs)
    try:
        source = frame_source(env.observation_space, list(env.metadata.get("render_modes", [])), env_id)
        return source, env.action_space, env.observation_space
    finally:
        env.close()


class GymWorld:
    """``num_envs`` copies of ``env_id``; ``set_state(states)`` starts them from recorded states (``hooks``)."""

    def __init__(self, env_id: str, num_envs: int, image_size: int, hooks: EnvHooks, **kwargs):
        self.source, self.action_space, self.observation_space = inspect_env(env_id, **kwargs)
        self.envs = [make_env(env_id, render=self.source == "render", **kwargs) for _ in range(num_envs)]
        self.image_size, self.hooks = image_size, hooks
        self.done = np.zeros(num_envs, bool)

    def _observe(self, obs: list) -> None:
        batch = {k: np.stack([o[k] for o in obs]) for k in obs[0]} if isinstance(obs[0], dict) else np.stack(obs)
        self.state, _ = state_of(batch, self.observation_space)
        if self.source == "render":
            pictures = np.stack([env.render() for env in self.envs])
        else:
            pictures = batch if self.source == "obs" else batch[self.source.split(":", 1)[1]]
        self.frames = resize_frames(pictures, self.image_size)
        self.last_obs = obs

    def set_state(self, states: np.ndarray, seed: int = 0) -> tuple[np.ndarray, dict]:
        """Every copy reset (seed ``seed + i``) then put into ``states[i]``; returns the frames and the states."""
        obs = []
        for i, (env, state) in enumerate(zip(self.envs, states)):
            env.reset(seed=seed + i)
            obs.append(self.hooks.set_state(env, state))
        self.done[:] = False
        self._observe(obs)
        return self.frames, {"state": self.state}

    def render(self) -> np.ndarray:
        return self.frames

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, dict]:
        """Step every copy whose episode has not ended; the frames ``(B, C, S, S)`` and ``{"state": (B, S)}``."""
        obs = list(self.last_obs)
        for i, env in enumerate(self.envs):
            if not self.done[i]:
                obs[i], _, terminated, truncated, _ = env.step(np.asarray(actions[i], self.action_space.dtype))
                self.done[i] = terminated or truncated
        self._observe(obs)
        return self.frames, {"state": self.state}

    def close(self) -> None:
        for env in self.envs:
            env.close()


__all__ = ["GymWorld", "import_modules", "inspect_env", "make_env"]
