"""The goal-frame protocol (the one published PushT and two-room results use), for any world with hooks.

Each episode starts from a state of a held-out trajectory; the goal is the frame that the same trajectory shows
``offset`` steps later; the agent acts for ``budget`` steps (receding-horizon Mode-2, or any actor); success is
the environment's own criterion on the final true state (``amia.envs.hooks``). amia's worlds run on their batched
form; any other Gymnasium id runs as ``amia.envs.gym_world.GymWorld``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from amia.agent.actor import Actor
from amia.agent.episodes import run_episodes
from amia.agent.load import AgentConfig, load_agent
from amia.data.dataset import read_info, split_episodes
from amia.envs import ENV_SPECS, make_world
from amia.envs.gym_world import GymWorld, import_modules
from amia.envs.hooks import hooks_for
from amia.eval.timing import timing
from amia.infra.config import to_dict
from amia.infra.provenance import git_revision
from amia.infra.run_dir import data_file, read_config
from amia.infra.validate import at_least


@dataclass
class GoalFrameConfig:
    """``episodes`` starts (seeded by ``seed``) from the trajectories of ``data`` (the run's own data: its held-out
    episodes), goals ``offset`` steps later, ``budget`` steps to reach them."""

    episodes: int = 100
    seed: int = 0
    offset: int = 25
    budget: int = 50
    timing_calls: int = 20

    def __post_init__(self):
        at_least(self, 1, "episodes", "offset", "budget")
        at_least(self, 0, "timing_calls")


def goal_frame_pairs(data: str | Path, episodes: np.ndarray, cfg: GoalFrameConfig) -> dict[str, np.ndarray]:
    """Seeded starts: for each, a trajectory among ``episodes`` at least ``offset + 1`` frames long and a time
    ``t``; returns ``start`` / ``goal`` states (the file's ``state`` at ``t`` and ``t + offset``), ``goal_obs``
    (the frame at ``t + offset``), ``episode`` and ``t``."""
    info = read_info(data)
    off = info.episode_offsets
    episodes = np.asarray(episodes)
    long_enough = episodes[off[episodes + 1] - off[episodes] > cfg.offset]
    if long_enough.size == 0:
        raise ValueError(f"{data}: no trajectory among the {episodes.size} used has the {cfg.offset + 1} frames that "
                         f"a goal {cfg.offset} steps ahead needs")
    rng = np.random.default_rng([cfg.seed, 31])
    ep = rng.choice(long_enough, cfg.episodes)
    t = rng.integers(0, off[ep + 1] - off[ep] - cfg.offset)
    start, goal = off[ep] + t, off[ep] + t + cfg.offset
    with h5py.File(data, "r") as f:
        frames, which = np.unique(goal, return_inverse=True)  # HDF5 reads rising, distinct indices
        goal_obs = f["obs"][frames][which]
        states = f["state"][()]
    return {"start": states[start], "goal": states[goal], "goal_obs": goal_obs, "episode": ep, "t": t}


def goal_frame_world(env_id: str, n: int, obs_shape: tuple[int, ...], starts: np.ndarray, seed: int):
    """``n`` copies of the world at ``starts``: amia's batched world, or any Gymnasium env through its hooks."""
    if env_id in ENV_SPECS:
        world = make_world(env_id, n)
        world.set_state(starts.astype(np.float64))
    else:
        world = GymWorld(env_id, n, obs_shape[-1], hooks_for(env_id))
        world.set_state(starts, seed)
    if tuple(world.render().shape[1:]) != tuple(obs_shape):
        raise ValueError(f"{env_id} gives frames {tuple(world.render().shape[1:])}, the goal frames are {tuple(obs_shape)}")
    return world


def evaluate_goal_frame(actor: Actor, env_id: str, data: str | Path, episodes: np.ndarray, cfg: GoalFrameConfig,
                        progress: bool = True) -> dict:
    """Run the protocol with ``actor``; the summary has the fields of ``amia.eval.protocol.evaluate_actor``
    (success rate, the actor's settings, decision times) plus the protocol's own (offset, budget, criterion)."""
    hooks = hooks_for(env_id)
    pairs = goal_frame_pairs(data, episodes, cfg)
    obs_shape = pairs["goal_obs"].shape[1:]
    world = goal_frame_world(env_id, cfg.episodes, obs_shape, pairs["start"], cfg.seed)
    with tqdm(total=cfg.budget, desc=f"goal-frame {actor.describe().get('planner', '')}", unit="step",
              disable=not progress) as bar:
        out = run_episodes(actor, world, pairs["goal_obs"], cfg.budget, cfg.seed, progress=bar.update)
    success = hooks.success(out["final_state"], pairs["goal"])
    r = {"env": env_id, "protocol": "goal-frame", **actor.describe(), "episodes": cfg.episodes, "seed": cfg.seed,
         "offset": cfg.offset, "budget": cfg.budget, "max_steps": cfg.budget, "criterion": hooks.criterion,
         "data": str(data), "success_rate": float(np.mean(success)), "success": success.astype(int).tolist()}
    if env_id in ENV_SPECS:
        d = np.linalg.norm(out["final_state"][:, :2] - pairs["goal"][:, :2], axis=1)
        r.update(mean_final_distance_px=float(np.mean(d)), final_distance_px=[round(float(x), 2) for x in d])
    r.update(ms_per_plan_median=None, ms_per_action_mean=None)
    if cfg.timing_calls:
        one = goal_frame_world(env_id, 1, obs_shape, pairs["start"][:1], cfg.seed)
        r.update(timing(actor, one, pairs["goal_obs"][:1], cfg.timing_calls, cfg.seed))
    return {**r, "git_rev": git_revision()}


def held_out_episodes(data: str | Path, val_fraction: float | None) -> np.ndarray:
    """The episodes a protocol may use: the held-out split of the run's own data (``val_fraction``), or every
    episode of another file (``None``)."""
    n = read_info(data).episodes
    return np.arange(n) if val_fraction is None else split_episodes(n, val_fraction)[1]


def goal_frame(run_dir: str | Path, cfg: GoalFrameConfig | None = None, agent: AgentConfig | None = None,
               data: str | Path | None = None, device: str = "cpu", imports: list[str] | None = None,
               progress: bool = True) -> dict:
    """Evaluate a trained run by the goal-frame protocol: ``agent`` says how it acts (default Mode-2), ``data``
    where the trajectories come from (default: the run's own, its held-out episodes), ``imports`` the modules
    that register its env. Returns ``evaluate_goal_frame``'s summary with the run and the resolved config."""
    cfg, agent = cfg or GoalFrameConfig(), agent or AgentConfig()
    import_modules(imports or [])
    saved = read_config(run_dir)
    own = data_file(run_dir, saved)
    data = Path(data) if data else own
    val = saved["train"].get("val_fraction", 0.1) if data.resolve() == own.resolve() else None
    actor = load_agent(run_dir, agent, device, saved["env_id"])
    summary = evaluate_goal_frame(actor, saved["env_id"], data, held_out_episodes(data, val), cfg, progress)
    return {"run": str(run_dir), **summary, "config": {**to_dict(agent), "goal_frame": to_dict(cfg)}}


__all__ = ["GoalFrameConfig", "goal_frame", "evaluate_goal_frame", "goal_frame_pairs", "goal_frame_world", "held_out_episodes"]
