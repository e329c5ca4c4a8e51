"""Evaluation protocols (Sec. 3.1.2): goal reaching by Mode-2 model-predictive control, many episodes at once.

The agent sees the goal frame, encodes it, and re-plans every ``replan_every`` steps the action sequence whose
predicted states come closest to the goal's state (receding horizon, warm-started from the previous plan).
Success: final distance to the goal under 4.5 px; strict success: within 1.5 px at any step.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from amia.actor.planners import PLANNERS, PlannerConfig, plan, shift
from amia.cost import GoalDistance
from amia.envs import STRICT_SUCCESS_RADIUS, SUCCESS_RADIUS, evaluation_set, make_world
from amia.jepa import JEPA


@dataclass
class EvalConfig:
    """The standard protocol: ``episodes`` seeded start/goal pairs, ``max_steps`` steps each."""

    planner: str = "gd"
    episodes: int = 200
    seed: int = 0
    max_steps: int = 200
    replan_every: int = 4
    timing_calls: int = 20
    final_weight: float = 30.0
    planning: PlannerConfig = field(default_factory=PlannerConfig)


class GoalReachingError(ValueError):
    """A model, goal or world that the protocol cannot use together."""


def check_compatible(model: JEPA, env_id: str) -> None:
    """The model must have been trained on this world's observations and action space."""
    world = make_world(env_id, 1)
    if tuple(model.obs_shape) != tuple(world.obs_shape):
        raise GoalReachingError(f"the model was trained on observations {model.obs_shape}, {env_id} gives {world.obs_shape}")
    if model.action_dim != 2:
        raise GoalReachingError(f"the model was trained with {model.action_dim}-D actions, {env_id} has 2-D actions")


@torch.no_grad()
def encode(model: JEPA, obs: np.ndarray, device: torch.device) -> torch.Tensor:
    return model.encoder(torch.from_numpy(obs).to(device))


def make_cost(model: JEPA, goal_states: torch.Tensor, final_weight: float = 30.0) -> GoalDistance:
    """The intrinsic goal cost for goal states ``(B, D)`` (checked against the model's state size)."""
    d = model.cfg.encoder.dim
    if goal_states.dim() != 2 or goal_states.shape[1] != d:
        raise GoalReachingError(f"goal states should have shape (B, {d}), got {tuple(goal_states.shape)}")
    return GoalDistance(goal_states, final_weight)


def _start(model: JEPA, env_id: str, cfg: EvalConfig, episodes: int, device: torch.device):
    """Frozen model, the world set to the first ``episodes`` start states, their goal cost and goal positions."""
    model = model.to(device).eval().requires_grad_(False)
    pairs = evaluation_set(env_id, episodes, cfg.seed)
    world, goal_world = make_world(env_id, episodes), make_world(env_id, episodes)
    obs, _ = world.set_state(pairs["start"].astype(np.float64))
    goal_obs, _ = goal_world.set_state(pairs["goal"].astype(np.float64))
    cost = make_cost(model, encode(model, goal_obs, device), cfg.final_weight)
    return model, world, obs, cost, pairs["goal"][:, :2]


def run_episodes(model: JEPA, env_id: str, cfg: EvalConfig, device: torch.device | str = "cpu",
                 progress: bool = True, record: int = 0) -> dict:
    """Run the protocol; returns per-episode arrays (final distances, ever-within-strict) and optional traces.

    ``record`` keeps, for that many episodes, the frames, goal positions and each plan's predicted states.
    """
    if cfg.planner not in PLANNERS:
        raise GoalReachingError(f"unknown planner {cfg.planner!r}; known: {', '.join(PLANNERS)}")
    check_compatible(model, env_id)
    device = torch.device(device)
    model, world, obs, cost, goal_xy = _start(model, env_id, cfg, cfg.episodes, device)
    bound = world.spec.max_step
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    actions = torch.zeros(cfg.episodes, cfg.planning.horizon, 2, device=device)
    ever_strict = np.zeros(cfg.episodes, dtype=bool)
    trace = {"frames": [], "plans": []} if record else None
    bar = tqdm(total=cfg.max_steps, desc=f"eval {cfg.planner}", unit="step", disable=not progress)
    for t in range(cfg.max_steps):
        k = t % cfg.replan_every
        if k == 0:
            s0 = encode(model, obs, device)
            init = shift(actions, cfg.replan_every) if t else actions
            result = plan(cfg.planner, model.predictor.rollout, cost, s0, init, bound, cfg.planning,
                          warm=t > 0, generator=gen)
            actions = result.actions
            if record:
                trace["plans"].append(model.predictor.rollout(s0[:record], actions[:record]).cpu())
        obs, info = world.step(actions[:, k].cpu().numpy())
        dist = np.linalg.norm(info["state"][:, :2] - goal_xy, axis=1)
        ever_strict |= dist < STRICT_SUCCESS_RADIUS
        if record:
            trace["frames"].append(obs[:record])
        bar.update(1)
    bar.close()
    return {"final_distance": dist, "ever_strict": ever_strict, "goal_xy": goal_xy, "trace": trace}


def time_per_plan(model: JEPA, env_id: str, cfg: EvalConfig, device: torch.device | str = "cpu") -> float:
    """Median wall time (ms) of one warm-started re-planning call for one episode (batch size 1)."""
    device = torch.device(device)
    model, world, obs, cost, _ = _start(model, env_id, cfg, 1, device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    actions = torch.zeros(1, cfg.planning.horizon, 2, device=device)
    times = []
    for i in range(cfg.timing_calls + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        s0 = encode(model, obs, device)
        actions = plan(cfg.planner, model.predictor.rollout, cost, s0, shift(actions, cfg.replan_every) if i else actions,
                       world.spec.max_step, cfg.planning, warm=i > 0, generator=gen).actions
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first call is the cold start
            times.append(time.perf_counter() - t0)
        for k in range(cfg.replan_every):
            obs, _ = world.step(actions[:, k].cpu().numpy())
    return 1000 * statistics.median(times)


def evaluate(model: JEPA, env_id: str, cfg: EvalConfig, device: torch.device | str = "cpu",
             progress: bool = True) -> dict:
    """The standard goal-reaching protocol's summary for one planner."""
    out = run_episodes(model, env_id, cfg, device, progress)
    d = out["final_distance"]
    return {"env": env_id, "planner": cfg.planner, "episodes": cfg.episodes, "seed": cfg.seed,
            "success_rate": float(np.mean(d < SUCCESS_RADIUS)),
            "strict_success_rate": float(np.mean(out["ever_strict"])),
            "mean_final_distance_px": float(np.mean(d)),
            "ms_per_plan_median": round(time_per_plan(model, env_id, cfg, device), 2) if cfg.timing_calls else None}
