"""Built-in pixel worlds, registered with Gymnasium, plus their batched form and evaluation sets.

``amia/TwoRooms-v0`` and ``amia/Wall-v0`` are rooms worlds (``amia.envs.rooms``; state ``(x, y, wall_x, door_y)``);
``amia/Maze-v0`` is a 3x3 maze of rooms (``amia.envs.maze``; state ``(x, y)``). Three stochastic worlds test
uncertainty (Sec. 4.8, Sec. 5): ``amia/Gust-v0`` (``amia.envs.gust``; state ``(x, y)``), where a gust band pushes the
agent down or up at random; ``amia/Hazard-v0`` (``amia.envs.hazard``; state ``(x, y, fallen)``), where a rare gust
blows the agent into a pit that ends its episode; ``amia/Chaser-v0`` (``amia.envs.chaser``; state
``(x, y, cx, cy, caught)``, 3-channel frames), where a chaser wanders (data) or pursues (evaluation).
``amia.envs.outcomes.true_outcomes`` gives their true next-state distributions.

Every world's spec has ``max_step`` (the action bound) and ``max_steps`` (the episode budget); every batched world
has ``state_names``, ``failed`` (``(B,)`` bool: fallen, caught), ``failure_name`` (what a failure is, or None) and
``reaches_goal`` (False where the task is only to avoid failing).
"""

from __future__ import annotations

import difflib

import gymnasium as gym
import numpy as np

from amia.envs.chaser import CHASER_STATE_NAMES, ChaserSpec, ChaserWorld, chaser_evaluation_set
from amia.envs.gust import GUST_STATE_NAMES, GustSpec, GustWorld, gust_evaluation_set
from amia.envs.hazard import HAZARD_STATE_NAMES, HazardSpec, HazardWorld, hazard_evaluation_set
from amia.envs.maze import MAZE_STATE_NAMES, MazeSpec, MazeWorld, maze_evaluation_set
from amia.envs.rooms import STATE_NAMES, RoomsSpec, RoomsWorld

WorldSpec = RoomsSpec | MazeSpec | GustSpec | HazardSpec | ChaserSpec
World = RoomsWorld | MazeWorld | GustWorld | HazardWorld | ChaserWorld

ENV_SPECS: dict[str, WorldSpec] = {
    "amia/TwoRooms-v0": RoomsSpec(),
    "amia/Wall-v0": RoomsSpec(random_layout=True),
    "amia/Maze-v0": MazeSpec(),
    "amia/Gust-v0": GustSpec(),
    "amia/Hazard-v0": HazardSpec(),
    "amia/Chaser-v0": ChaserSpec(),
}

WORLDS = {RoomsSpec: RoomsWorld, MazeSpec: MazeWorld, GustSpec: GustWorld, HazardSpec: HazardWorld,
          ChaserSpec: ChaserWorld}
EVALUATION_SETS = {MazeSpec: maze_evaluation_set, GustSpec: gust_evaluation_set, HazardSpec: hazard_evaluation_set,
                   ChaserSpec: chaser_evaluation_set}  # the rooms worlds' set is ``evaluation_set``'s own

SUCCESS_RADIUS = 4.5
STRICT_SUCCESS_RADIUS = 1.5


def env_spec(env_id: str) -> WorldSpec:
    """The geometry of a built-in world; a clear error for an unknown id."""
    if env_id not in ENV_SPECS:
        close = difflib.get_close_matches(env_id, ENV_SPECS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown env id {env_id!r}; known: {sorted(ENV_SPECS)}.{hint}")
    return ENV_SPECS[env_id]


def world_for_spec(spec: WorldSpec, num_envs: int, seed: int | None = None, evaluation: bool = False) -> World:
    """The batched world that a spec describes (``WORLDS``: a maze for ``MazeSpec``, ...)."""
    return WORLDS[type(spec)](num_envs, spec, seed=seed, evaluation=evaluation)


def make_world(env_id: str, num_envs: int, seed: int | None = None, evaluation: bool = False) -> World:
    """Batched world for ``num_envs`` episodes at once; ``evaluation``: as the evaluation protocol runs it (the
    chaser pursues instead of wandering; the other worlds are the same either way)."""
    return world_for_spec(env_spec(env_id), num_envs, seed=seed, evaluation=evaluation)


def evaluation_set(env_id: str, episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded start/goal pairs: ``start`` and ``goal`` states ``float32 (N, S)`` in the world's state layout.

    Rooms worlds: start and goal in opposite rooms, ``S = 4``. Maze: start and goal rooms at least
    ``spec.eval_min_doors`` (3) doors apart through open doors, ``S = 2``. Gust: start left of the gust band, goal
    right of it, ``S = 2``. Hazard: start and goal on either side of the gust zone below the pit, ``S = 3``. Chaser:
    the chaser 20-30 px from the agent, the goal equal to the start, ``S = 5``. Success is a final distance under
    ``SUCCESS_RADIUS`` px; strict success is being within ``STRICT_SUCCESS_RADIUS`` px at any step.
    """
    spec = env_spec(env_id)
    if type(spec) in EVALUATION_SETS:
        return EVALUATION_SETS[type(spec)](spec, episodes, seed)
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


def start_episodes(env_id: str, pairs: dict[str, np.ndarray], seed: int = 0) -> tuple[World, np.ndarray]:
    """A batched world at the start states of start/goal ``pairs`` (``evaluation_set``), and its goal frames.

    The world runs as in evaluation (``make_world(..., evaluation=True)``), its random numbers seeded from ``seed``
    (the protocol's), so that an evaluation in a stochastic world is reproducible."""
    n = len(pairs["start"])
    world, goal_world = make_world(env_id, n, evaluation=True), make_world(env_id, n, evaluation=True)
    world.rng = np.random.default_rng([seed, 7])
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
    "CHASER_STATE_NAMES", "ENV_SPECS", "GUST_STATE_NAMES", "HAZARD_STATE_NAMES", "ChaserSpec", "ChaserWorld",
    "GustSpec", "GustWorld", "HazardSpec", "HazardWorld", "WORLDS", "MAZE_STATE_NAMES", "STATE_NAMES",
    "STRICT_SUCCESS_RADIUS", "SUCCESS_RADIUS", "MazeSpec", "MazeWorld",
    "RoomsSpec", "RoomsWorld", "World", "WorldSpec", "env_spec", "evaluation_set", "make_world", "start_episodes",
    "world_for_spec",
]
