"""Evaluation protocols (Sec. 3.1.2) on the built-in worlds: seeded start/goal pairs, many episodes at once.

The agent sees the goal frame and acts for the world's budget of steps; success is a final distance to the goal
under ``SUCCESS_RADIUS`` (4.5 px), strict success is being within 1.5 px at any step. Tasks other than reach
add their own criteria (never entering the forbidden region; keeping away from the moving point). In a world with
failures (falling into the hazard world's pit, capture by the chaser: Sec. 4.8, Sec. 5) an episode that failed
at any step is no success, and where the world sets no goal to reach (the chaser) success is never failing. Any actor
(``amia.agent.actor.Actor``) runs the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from amia.agent.actor import Actor
from amia.agent.episodes import run_episodes
from amia.agent.load import AgentConfig, AgentError, load_agent, oracle_agent
from amia.cost.configurator import TaskConfig, moving_point
from amia.envs import STRICT_SUCCESS_RADIUS, SUCCESS_RADIUS, env_spec, evaluation_set, start_episodes
from amia.eval.timing import timing
from amia.infra.config import to_dict
from amia.infra.provenance import git_revision
from amia.infra.run_dir import read_config
from amia.infra.validate import at_least, check


@dataclass
class EvalConfig(AgentConfig):
    """The protocol: how the agent acts (``AgentConfig``) on ``episodes`` seeded start/goal pairs (``seed``),
    ``max_steps`` steps each (None: the world's budget, ``env_spec(env_id).max_steps``); ``timing_calls``
    decisions timed at batch size 1 (0: no timing)."""

    episodes: int = 200
    seed: int = 0
    max_steps: int | None = None
    timing_calls: int = 20

    def __post_init__(self):
        super().__post_init__()
        at_least(self, 1, "episodes")
        at_least(self, 0, "seed", "timing_calls")
        check(self.max_steps is None or self.max_steps >= 1, "max_steps", self.max_steps,
              "an integer >= 1 (or null: the world's budget)")

    def steps(self, env_id: str) -> int:
        """The episode budget in ``env_id``: ``max_steps``, or the world's own budget when it is None."""
        return self.max_steps if self.max_steps is not None else env_spec(env_id).max_steps


def inside_region(positions: np.ndarray, region: tuple[float, float, float, float]) -> np.ndarray:
    """Whether each position ``(..., 2)`` lies inside the rectangle ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = region
    return (positions[..., 0] > x0) & (positions[..., 0] < x1) & (positions[..., 1] > y0) & (positions[..., 1] < y1)


def task_episodes(env_id: str, task: TaskConfig, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """The seeded start/goal set of a task: the standard set, except that a task with a forbidden region keeps
    only pairs whose start and goal lie at least 4 px outside it (so the task can be solved)."""
    if not task.has_region:
        return evaluation_set(env_id, episodes, seed)
    x0, y0, x1, y1 = task.region
    for factor in (2, 4, 8):
        pairs = evaluation_set(env_id, episodes * factor, seed)
        ok = np.ones(episodes * factor, dtype=bool)
        for key in ("start", "goal"):
            ok &= ~inside_region(pairs[key][:, :2], (x0 - 4, y0 - 4, x1 + 4, y1 + 4))
        if ok.sum() >= episodes:
            idx = np.flatnonzero(ok)[:episodes]
            return {k: v[idx] for k, v in pairs.items()}
    raise AgentError(f"could not draw {episodes} start/goal pairs outside the region {task.region}")


def run_protocol(actor: Actor, env_id: str, cfg: EvalConfig, progress: bool = True, record: int = 0) -> dict:
    """The protocol's episodes: per-episode ``final_distance``, ``ever_strict``, ``success``, true ``positions``,
    the actor's report, and the task's own measures (``steps_inside`` a forbidden region, ``min_point_distance``
    to the moving point). In a world with failures also ``failed`` (at any step) and ``failure_name``. ``record``
    keeps frames and the actor's trace for that many episodes."""
    task, steps = cfg.task_config(), cfg.steps(env_id)
    pairs = task_episodes(env_id, task, cfg.episodes, cfg.seed)
    world, goal_obs = start_episodes(env_id, pairs, cfg.seed)
    goal_xy = pairs["goal"][:, :2]
    inputs = {}
    if task.away_weight:
        inputs["point"] = moving_point(goal_xy, pairs["start"][:, :2], task.point_speed,
                                       steps + (task.horizon or cfg.planning.horizon) + 1)
    if getattr(actor, "needs_world", False):  # the oracle (amia.planning.oracle) reads true states
        inputs.update(true_world=world, goal_states=pairs["goal"])
    with tqdm(total=steps, desc=f"eval {actor.describe()['planner']}", unit="step", disable=not progress) as bar:
        out = run_episodes(actor, world, goal_obs, steps, cfg.seed, record, bar.update, **inputs)
    dist = np.linalg.norm(out["positions"] - goal_xy[:, None], axis=-1)
    out.update(goal_xy=goal_xy, final_distance=dist[:, -1], ever_strict=(dist[:, 1:] < STRICT_SUCCESS_RADIUS).any(1),
               success=dist[:, -1] < SUCCESS_RADIUS)
    if task.has_region:
        out["steps_inside"] = inside_region(out["positions"][:, 1:], task.region).sum(1)
        out["success"] = out["success"] & (out["steps_inside"] == 0)
    if task.away_weight:
        gap = np.linalg.norm(out["positions"] - inputs["point"][:, : steps + 1], axis=-1)
        out["min_point_distance"] = gap.min(1)
        out["success"] = out["min_point_distance"] >= task.away_radius
    if "failed" in out:
        out["failure_name"] = world.failure_name
        out["success"] = ~out["failed"] if not world.reaches_goal else out["success"] & ~out["failed"]
    return out


def evaluate_actor(actor: Actor, env_id: str, cfg: EvalConfig, progress: bool = True) -> dict:
    """The protocol's summary for one actor: success rates, distances, the actor's settings and compute, the
    decision times at batch size 1 (``amia.eval.timing``), and the whole resolved ``config``."""
    out = run_protocol(actor, env_id, cfg, progress)
    d = out["final_distance"]
    r = {"env": env_id, "task": cfg.task, "mode": cfg.mode, "policy_init": False, **actor.describe(),
         "critic_weight": cfg.critic_weight, "hierarchical": cfg.hierarchical, "episodes": cfg.episodes,
         "seed": cfg.seed, "max_steps": cfg.steps(env_id), "success_rate": float(np.mean(out["success"])),
         "strict_success_rate": float(np.mean(out["ever_strict"])), "mean_final_distance_px": float(np.mean(d)),
         "final_distance_px": [round(float(x), 2) for x in d]}
    if r["surprise_watch"]:
        r.update(surprises=out["surprises"],
                 explored_step_fraction=out["explored_steps"] / (cfg.episodes * cfg.steps(env_id)))
    if "steps_inside" in out:
        r.update(region_entry_rate=float(np.mean(out["steps_inside"] > 0)),
                 steps_inside_region=int(out["steps_inside"].sum()))
    if "failed" in out:
        r["failure_rate"] = r[f"{out['failure_name']}_rate"] = float(np.mean(out["failed"]))
    if "min_point_distance" in out:
        r["mean_min_point_distance_px"] = float(np.mean(out["min_point_distance"]))
    r.update(ms_per_plan_median=None, ms_per_action_mean=None)
    # keep-away's moving point is not timed, nor the oracle (its time is the simulator's, not a model's)
    if cfg.timing_calls and "min_point_distance" not in out and not getattr(actor, "needs_world", False):
        world, goal_obs = start_episodes(env_id, task_episodes(env_id, cfg.task_config(), 1, cfg.seed),
                                         cfg.seed)
        r.update(timing(actor, world, goal_obs, cfg.timing_calls, cfg.seed))
    r.update(config=to_dict(cfg), git_rev=git_revision())
    return r


def evaluate_oracle(env_id: str, cfg: EvalConfig | None = None, progress: bool = True) -> dict:
    """The protocol with the oracle (``amia.planning.oracle``): ``cfg``'s planner and task on the true dynamics."""
    cfg = cfg or EvalConfig()
    return {"run": "oracle", **evaluate_actor(oracle_agent(cfg, env_id), env_id, cfg, progress)}


def evaluate(run_dir: str | Path, cfg: EvalConfig | None = None, device: str = "cpu", env_id: str | None = None,
             progress: bool = True) -> dict:
    """Evaluate a trained run with the protocol (``cfg``: how the agent acts and on which episodes; ``env_id``:
    the world, default the one it was trained on). Returns the summary (``evaluate_actor``) with the run."""
    cfg = cfg or EvalConfig()
    env_id = env_id or read_config(run_dir)["env_id"]
    actor = load_agent(run_dir, cfg, device, env_id)
    return {"run": str(run_dir), **evaluate_actor(actor, env_id, cfg, progress)}


__all__ = ["EvalConfig", "evaluate", "evaluate_actor", "evaluate_oracle", "inside_region", "run_protocol", "task_episodes"]
