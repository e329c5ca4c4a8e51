"""Built-in pixel worlds, registered with Gymnasium, plus their batched form and evaluation sets.

``amia/TwoRooms-v0`` and ``amia/Wall-v0`` are rooms worlds (``amia.envs.rooms``; state ``(x, y, wall_x, door_y)``);
``amia/Maze-v0`` is a 3x3 maze of rooms (``amia.envs.maze``; state ``(x, y)``). Every world's spec has
``max_step`` (the action bound) and ``max_steps`` (the episode budget); every batched world has ``state_names``.
"""

from __future__ import annotations

import difflib

import gymnasium as gym
import numpy as np

from amia.envs.maze import MAZE_STATE_NAMES, MazeSpec, MazeWorld, maze_evaluation_set
from amia.envs.rooms import STATE_NAMES, RoomsSpec, RoomsWorld

WorldSpec = RoomsSpec | MazeSpec
World = RoomsWorld | MazeWorld

ENV_SPECS: dict[str, WorldSpec] = {
    "amia/TwoRooms-v0": RoomsSpec(),
    "amia/Wall-v0": RoomsSpec(random_layout=True),
    "amia/Maze-v0": MazeSpec(),
}

SUCCESS_RADIUS = 4.5
STRICT_SUCCESS_RADIUS = 1.5


def env_spec(env_id: str) -> WorldSpec:
    """The geometry of a built-in world; a clear error for an unknown id."""
    if env_id not in ENV_SPECS:
        close = difflib.get_close_matches(env_id, ENV_SPECS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown env id {env_id!r}; known: {sorted(ENV_SPECS)}.{hint}")
    return ENV_SPECS[env_id]


def world_for_spec(spec: WorldSpec, num_envs: int, seed: int | None = None) -> World:
    """The batched world that a spec describes (a maze for ``MazeSpec``, else a rooms world)."""
    cls = MazeWorld if isinstance(spec, MazeSpec) else RoomsWorld
    return cls(num_envs, spec, seed=seed)


def make_world(env_id: str, num_envs: int, seed: int | None = None) -> World:
    """Batched world for ``num_envs`` episodes at once."""
    return world_for_spec(env_spec(env_id), num_envs, seed=seed)


def evaluation_set(env_id: str, episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded start/goal pairs: ``start`` and ``goal`` states ``float32 (N, S)`` in the world's state layout.

    Rooms worlds: start and goal in opposite rooms, ``S = 4``. Maze: start and goal rooms at least
    ``spec.eval_min_doors`` (3) doors apart through open doors, ``S = 2``. Success is a final distance under
    ``SUCCESS_RADIUS`` px; strict success is being within ``STRICT_SUCCESS_RADIUS`` px at any step.
    """
    spec = env_spec(env_id)
    if isinstance(spec, MazeSpec):
        return maze_evaluation_set(spec, episodes, seed)
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


def start_episodes(env_id: str, pairs: dict[str, np.ndarray]) -> tuple[World, np.ndarray]:
    """A batched world at the start states of start/goal ``pairs`` (``evaluation_set``), and its goal frames."""
    n = len(pairs["start"])
    world, goal_world = make_world(env_id, n), make_world(env_id, n)
    world.set_state(pairs["start"].astype(np.float64))
    goal_obs, _ = goal_world.set_state(pairs["goal"].astype(np.float64))
    return world, goal_obs


for _id, _spec in ENV_SPECS.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point="amia.envs.gym_env:RoomsEnv", kwargs={"spec": _spec},
                     max_episode_steps=_spec.max_steps)
if "amia/PushT-v0" not in gym.registry:  # gym-pusht's PushT seen as pixels + true state (amia.envs.pusht)
    gym.register("amia/PushT-v0", entry_point="amia.envs.pusht:PushTPixels", max_episode_steps=300)

__all__ = [
    "ENV_SPECS", "MAZE_STATE_NAMES", "STATE_NAMES", "STRICT_SUCCESS_RADIUS", "SUCCESS_RADIUS", "MazeSpec", "MazeWorld",
    "RoomsSpec", "RoomsWorld", "World", "WorldSpec", "env_spec", "evaluation_set", "make_world", "start_episodes",
    "world_for_spec",
]
