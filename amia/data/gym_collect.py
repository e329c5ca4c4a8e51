"""Reward-free data from any registered Gymnasium environment with pixels (``amia collect --env ID``).

Several copies of the environment run at once through Gymnasium's vector API. Frames come from the observation or
from ``render()`` (``amia.envs.pixels``) and are resized to ``image_size``; actions come from a collection policy
in the environment's own ``Box`` (any dimension, bounds per dimension, stored in the file); whatever vector state
the observation carries is stored as ``state``. Episodes that run past ``steps`` actions are cut into pieces of
``steps`` actions; an episode that ends earlier is stored as it is.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from amia.data.dataset import TrajectoryWriter
from amia.data.policies import BOX_POLICIES, load_policy
from amia.envs.gym_world import import_modules, inspect_env
from amia.envs.pixels import resize_frames, state_of
from amia.infra.validate import at_least, check, one_of, within


@dataclass
class GymCollectConfig:
    """``episodes`` pieces of at most ``steps`` actions, from ``num_envs`` copies at once (``vectorization``: sync
    or async); ``policy``: ``random`` (uniform, held ``repeat`` steps), ``smooth`` (correlated noise, ``rho``) or a
    user's ``module:name``; ``imports``: modules that register the environment; ``env_kwargs``: given to ``make``."""

    episodes: int = 1000
    steps: int = 100
    policy: str = "smooth"
    repeat: int = 1
    rho: float = 0.9
    image_size: int = 64
    num_envs: int = 8
    vectorization: str = "sync"
    seed: int = 0
    imports: list[str] = field(default_factory=list)
    env_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        at_least(self, 1, "episodes", "steps", "repeat", "image_size", "num_envs")
        within(self, "rho", 0, 1, open_high=True)
        one_of(self, "vectorization", ("sync", "async"))
        check(self.policy in BOX_POLICIES or ":" in self.policy, "policy", self.policy,
              f"one of {', '.join(sorted(BOX_POLICIES))} or module:name")


def check_env(env_id: str, cfg: GymCollectConfig) -> tuple[str, gym.spaces.Box, gym.spaces.Space]:
    """Where the frames of ``env_id`` come from, its action box and its observation space; clear errors for an
    unknown id, a non-``Box`` action space or an unbounded one."""
    import_modules(cfg.imports)
    source, space, obs_space = inspect_env(env_id, **cfg.env_kwargs)
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"{env_id}: action space {space} is not a Box; amia plans continuous actions")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError(f"{env_id}: action space {space} is unbounded; expected finite low and high")
    return source, space, obs_space


def make_policy(cfg: GymCollectConfig, space: gym.spaces.Box):
    """The collection policy that ``cfg.policy`` names, acting in ``space``."""
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    if cfg.policy == "random":
        return BOX_POLICIES["random"](low, high, repeat=cfg.repeat)
    if cfg.policy == "smooth":
        return BOX_POLICIES["smooth"](low, high, rho=cfg.rho)
    return load_policy(cfg.policy, space)


class _Pieces:
    """Per-copy buffers of the current piece: frames, states and the actions between them."""

    def __init__(self, n: int):
        self.frames: list[list] = [[] for _ in range(n)]
        self.states: list[list] = [[] for _ in range(n)]
        self.actions: list[list] = [[] for _ in range(n)]

    def start(self, i: int, frame: np.ndarray, state: np.ndarray) -> None:
        self.frames[i], self.states[i], self.actions[i] = [frame], [state], []

    def take(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.stack(self.frames[i]), np.stack(self.actions[i]).astype(np.float32), np.stack(self.states[i])


def collect_gym(env_id: str, out: str | os.PathLike, cfg: GymCollectConfig | None = None, progress: bool = True) -> str:
    """Collect ``cfg.episodes`` pieces from ``env_id`` into the trajectory file ``out`` (atomic: the file appears
    only when whole)."""
    cfg = cfg or GymCollectConfig()
    source, space, obs_space = check_env(env_id, cfg)
    envs = gym.make_vec(env_id, cfg.num_envs, vectorization_mode=cfg.vectorization,
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP},
                        render_mode="rgb_array" if source == "render" else None, **cfg.env_kwargs)
    rng = np.random.default_rng([cfg.seed, 17])
    policy = make_policy(cfg, space)
    writer = None
    try:
        obs, _ = envs.reset(seed=cfg.seed)
        frames, states, names = _perceive(envs, obs, source, obs_space, cfg.image_size)
        writer = TrajectoryWriter(out, env_id, frames.shape[1:], space.shape[0], names,
                                  meta={"collect": asdict(cfg), "source": "gymnasium", "frames_from": source,
                                        "action_space": str(space)}, action_low=space.low, action_high=space.high)
        if hasattr(policy, "reset"):
            policy.reset(cfg.num_envs, rng)
        _run(envs, obs, frames, states, policy, rng, space, source, obs_space, cfg, writer, progress)
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        envs.close()
    return str(out)


def _perceive(envs, obs, source: str, obs_space, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Frames ``uint8 (n, C, size, size)``, states ``(n, S)`` and the state's names, for every copy."""
    if source == "render":
        pictures = np.stack(envs.call("render"))
    elif source == "obs":
        pictures = obs
    else:
        pictures = obs[source.split(":", 1)[1]]
    states, names = state_of(obs, obs_space)
    return resize_frames(np.asarray(pictures), size), states, names


def _run(envs, obs, frames, states, policy, rng, space, source, obs_space, cfg: GymCollectConfig,
         writer: TrajectoryWriter, progress: bool) -> None:
    """Step every copy until ``cfg.episodes`` pieces are written (a copy that finished an episode is reset by the
    vector API on its next step, whose action is ignored)."""
    n, pieces, fresh, written = cfg.num_envs, _Pieces(cfg.num_envs), np.zeros(cfg.num_envs, bool), 0
    for i in range(n):
        pieces.start(i, frames[i], states[i])
    with tqdm(total=cfg.episodes, desc=f"collect {envs.spec.id if envs.spec else ''}", unit="ep",
              disable=not progress) as bar:
        while written < cfg.episodes:
            action = np.clip(np.asarray(policy(obs, rng), np.float64).reshape(n, -1), space.low, space.high)
            obs, _, terminated, truncated, _ = envs.step(action.astype(space.dtype))
            frames, states, _ = _perceive(envs, obs, source, obs_space, cfg.image_size)
            for i in range(n):
                if fresh[i]:
                    pieces.start(i, frames[i], states[i])
                    fresh[i] = False
                    continue
                pieces.actions[i].append(action[i])
                pieces.frames[i].append(frames[i])
                pieces.states[i].append(states[i])
                done = bool(terminated[i] or truncated[i])
                if done or len(pieces.actions[i]) == cfg.steps:
                    f, a, s = pieces.take(i)
                    if written < cfg.episodes:
                        writer.add_batch(f[None], a[None], s[None])
                        written += 1
                        bar.update(1)
                    fresh[i] = done
                    pieces.start(i, frames[i], states[i])


__all__ = ["GymCollectConfig", "check_env", "collect_gym", "make_policy"]
