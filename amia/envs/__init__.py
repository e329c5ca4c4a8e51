"""Built-in pixel worlds, registered with Gymnasium, plus their batched form and evaluation sets."""

from __future__ import annotations

import difflib

import gymnasium as gym
import numpy as np

from amia.envs.rooms import STATE_NAMES, RoomsSpec, RoomsWorld

ENV_SPECS: dict[str, RoomsSpec] = {
    "amia/TwoRooms-v0": RoomsSpec(),
    "amia/Wall-v0": RoomsSpec(random_layout=True),
}

SUCCESS_RADIUS = 4.5
STRICT_SUCCESS_RADIUS = 1.5


def env_spec(env_id: str) -> RoomsSpec:
    """The geometry of a built-in world; a clear error for an unknown id."""
    if env_id not in ENV_SPECS:
        close = difflib.get_close_matches(env_id, ENV_SPECS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown env id {env_id!r}; known: {sorted(ENV_SPECS)}.{hint}")
    return ENV_SPECS[env_id]


def make_world(env_id: str, num_envs: int, seed: int | None = None) -> RoomsWorld:
    """Batched world for ``num_envs`` episodes at once."""
    return RoomsWorld(num_envs, env_spec(env_id), seed=seed)


def evaluation_set(env_id: str, episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded start/goal pairs in opposite rooms: ``start`` and ``goal`` states ``float32 (N, 4)``.

    Success is a final distance under ``SUCCESS_RADIUS`` px; strict success is being within
    ``STRICT_SUCCESS_RADIUS`` px at any step.
    """
    rng = np.random.default_rng([seed, 2024])
    world = make_world(env_id, episodes)
    wall_x, door_y = world.sample_layout(episodes, rng)
    world._set_layout(wall_x, door_y)
    start_room = rng.choice([-1, 1], size=episodes)
    start = world.sample_free(world.rects, rng, room=start_room)
    goal = world.sample_free(world.rects, rng, room=-start_room)
    layout = np.stack([wall_x, door_y], axis=1)
    return {
        "start": np.concatenate([start, layout], axis=1).astype(np.float32),
        "goal": np.concatenate([goal, layout], axis=1).astype(np.float32),
    }


for _id, _spec in ENV_SPECS.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point="amia.envs.gym_env:RoomsEnv", kwargs={"spec": _spec}, max_episode_steps=200)

__all__ = [
    "ENV_SPECS", "STATE_NAMES", "SUCCESS_RADIUS", "STRICT_SUCCESS_RADIUS", "RoomsSpec", "RoomsWorld",
    "env_spec", "evaluation_set", "make_world",
]
