"""Offline, reward-free data: run a collection policy in a batched world and write a trajectory file."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from amia.data.dataset import TrajectoryWriter
from amia.data.policies import POLICIES
from amia.envs import make_world
from amia.infra.validate import at_least, one_of, positive, within


@dataclass
class CollectConfig:
    """How much data to collect and with which policy (``policy``: drift, uniform, or doors: the drifting walk that
    threads the door in ``door_fraction`` of the episodes, rooms worlds only)."""

    episodes: int = 1000
    steps: int = 100
    policy: str = "drift"
    kappa: float = 5.0
    door_fraction: float = 0.5
    batch: int = 100
    seed: int = 0

    def __post_init__(self):
        at_least(self, 1, "episodes", "steps", "batch")
        at_least(self, 0, "seed")
        one_of(self, "policy", sorted(POLICIES))
        positive(self, "kappa")
        within(self, "door_fraction", 0, 1)


def collect(env_id: str, out: str | os.PathLike, cfg: CollectConfig | None = None, progress: bool = True) -> str:
    """Collect ``cfg.episodes`` episodes of ``cfg.steps`` steps into the trajectory file ``out`` (atomic)."""
    cfg = cfg or CollectConfig()
    world = make_world(env_id, 1)
    if cfg.policy == "doors" and tuple(world.state_names) != ("x", "y", "wall_x", "door_y"):
        raise ValueError(f"collect.policy=doors needs a rooms world with one wall and door; {env_id} has state "
                         f"{tuple(world.state_names)}")
    policy = {"drift": lambda: POLICIES["drift"](kappa=cfg.kappa), "uniform": POLICIES["uniform"],
              "doors": lambda: POLICIES["doors"](kappa=cfg.kappa, door_fraction=cfg.door_fraction)}[cfg.policy]()
    writer = TrajectoryWriter(out, env_id, world.obs_shape, 2, world.state_names,
                              meta={"collect": asdict(cfg), "spec": asdict(world.spec)})
    try:
        bar = tqdm(total=cfg.episodes, desc=f"collect {env_id}", unit="ep", disable=not progress)
        for i, start in enumerate(range(0, cfg.episodes, cfg.batch)):
            b = min(cfg.batch, cfg.episodes - start)
            rng = np.random.default_rng([cfg.seed, i])
            world = make_world(env_id, b)
            obs0, info = world.reset(seed=int(rng.integers(2**31)))
            policy.reset(b, rng)
            obs = np.empty((b, cfg.steps + 1, *world.obs_shape), np.uint8)
            states = np.empty((b, cfg.steps + 1, len(world.state_names)), np.float32)
            actions = np.empty((b, cfg.steps, 2), np.float32)
            obs[:, 0], states[:, 0] = obs0, info["state"]
            for t in range(cfg.steps):
                a = np.clip(policy(states[:, t], rng), -world.spec.max_step, world.spec.max_step)
                o, info = world.step(a)
                actions[:, t], obs[:, t + 1], states[:, t + 1] = a, o, info["state"]
            writer.add_batch(obs, actions, states)
            bar.update(b)
        bar.close()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return str(out)
