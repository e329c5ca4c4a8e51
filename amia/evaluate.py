"""Evaluation protocols (Sec. 3.1.2): goal reaching by Mode-2 model-predictive control, many episodes at once.

The agent sees the goal frame, encodes it, and re-plans every ``replan_every`` steps the action sequence whose
predicted states come closest to the goal's state (receding horizon, warm-started from the previous plan).
Success: final distance to the goal under 4.5 px; strict success: within 1.5 px at any step. With
``hierarchical``, the actor is hierarchical Mode-2 (Sec. 4.7, ``amia.actor.hierarchical``) over the run's two
H-JEPA levels, with the same episodes, budget and fields.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from amia.actor.compute import flat_calls_per_step, hierarchical_calls_per_step
from amia.actor.hierarchical import HierarchicalActor, HierarchyConfig
from amia.actor.planners import PLANNERS, PlannerConfig
from amia.actor.boredom import BoredomConfig, Trail
from amia.actor.surprise import SurpriseConfig
from amia.agent import Agent
from amia.configurator import TaskConfig, configure, moving_point
from amia.cost import Cost
from amia.envs import STRICT_SUCCESS_RADIUS, SUCCESS_RADIUS, env_spec, evaluation_set, make_world
from amia.data.sampler import WindowSampler
from amia.diagnostics import _encode, _windows
from amia.jepa import JEPA
from amia.probe import LinearProbe


@dataclass
class EvalConfig:
    """The standard protocol: ``episodes`` seeded start/goal pairs, ``max_steps`` steps each (None: the world's
    budget, ``env_spec(env_id).max_steps``: 400 in the maze, 200 in the rooms worlds).

    ``task`` names the configurator's task (reach, reach_avoid, keep_away); ``mode`` 2 plans with ``planner``,
    1 acts with the distilled policy; ``policy_init`` starts every Mode-2 plan from the policy rolled through
    the predictor; ``critic_weight`` adds the critic's value of the horizon's last state to the cost;
    ``forbid_weight`` replaces the task's weight of the forbidden-region term (0: plan as if unconstrained).
    ``hierarchical`` acts by hierarchical Mode-2 (reach task only) with the settings ``hierarchy`` (which
    replace ``replan_every``, ``final_weight`` and ``planning``; ``planner`` plans both levels unless
    ``hierarchy.planner2`` is set). ``surprise`` and ``boredom`` (flat Mode-2 only): exploration where the model
    was wrong, and the intrinsic cost of lingering away from the goal (``amia.actor.surprise``, ``.boredom``).
    """

    planner: str = "gd"
    task: str = "reach"
    mode: int = 2
    policy_init: bool = False
    critic_weight: float = 0.0
    forbid_weight: float | None = None
    episodes: int = 200
    seed: int = 0
    max_steps: int | None = None
    replan_every: int = 4
    timing_calls: int = 20
    final_weight: float = 30.0
    planning: PlannerConfig = field(default_factory=PlannerConfig)
    hierarchical: bool = False
    hierarchy: HierarchyConfig = field(default_factory=HierarchyConfig)
    surprise: SurpriseConfig = field(default_factory=SurpriseConfig)
    boredom: BoredomConfig = field(default_factory=BoredomConfig)

    def steps(self, env_id: str) -> int:
        """The episode budget in ``env_id``: ``max_steps``, or the world's own budget when it is None."""
        return self.max_steps if self.max_steps is not None else env_spec(env_id).max_steps


class GoalReachingError(ValueError):
    """A model, goal or world that the protocol cannot use together."""


def check_compatible(model: JEPA, env_id: str) -> None:
    """The model must have been trained on this world's observations and action space."""
    world = make_world(env_id, 1)
    if tuple(model.obs_shape) != tuple(world.obs_shape):
        raise GoalReachingError(f"the model was trained on observations {model.obs_shape}, {env_id} gives {world.obs_shape}")
    if model.action_dim != 2:
        raise GoalReachingError(f"the model was trained with {model.action_dim}-D actions, {env_id} has 2-D actions")


def make_cost(model: JEPA, goal_states: torch.Tensor, final_weight: float = 30.0) -> Cost:
    """The protocol's goal cost (the configurator's reach task) for goal states ``(B, D)``, checked against the model."""
    try:
        return Agent(model).cost(configure("reach", final_weight=final_weight), goal_states)
    except ValueError as e:
        raise GoalReachingError(str(e)) from None


def task_episodes(env_id: str, task: TaskConfig, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """The seeded start/goal set of a task: the standard set, except that ``reach_avoid`` keeps only pairs whose
    start and goal lie at least 4 px outside the forbidden region (so the task can be solved)."""
    if not task.has_region:
        return evaluation_set(env_id, episodes, seed)
    x0, y0, x1, y1 = task.region
    for factor in (2, 4, 8):
        pairs = evaluation_set(env_id, episodes * factor, seed)
        ok = np.ones(episodes * factor, dtype=bool)
        for key in ("start", "goal"):
            p = pairs[key][:, :2]
            ok &= ~((p[:, 0] > x0 - 4) & (p[:, 0] < x1 + 4) & (p[:, 1] > y0 - 4) & (p[:, 1] < y1 + 4))
        if ok.sum() >= episodes:
            idx = np.flatnonzero(ok)[:episodes]
            return {k: v[idx] for k, v in pairs.items()}
    raise GoalReachingError(f"could not draw {episodes} start/goal pairs outside the region {task.region}")


def inside_region(positions: np.ndarray, region: tuple[float, float, float, float]) -> np.ndarray:
    """Whether each position ``(..., 2)`` lies inside the rectangle ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = region
    return (positions[..., 0] > x0) & (positions[..., 0] < x1) & (positions[..., 1] > y0) & (positions[..., 1] < y1)


def frozen(model: JEPA, device: torch.device) -> JEPA:
    """The model for acting: on ``device``, in eval mode, without gradients for its weights, and with its
    convolution weights channels-last, on which PyTorch's CPU convolutions run faster at batch size 1 (one 64x64
    frame: 0.30 -> 0.17 ms on our 2-core CPU; the same numbers up to float rounding)."""
    return model.to(device).eval().requires_grad_(False).to(memory_format=torch.channels_last)


def make_agent(model: JEPA, env_id: str, cfg: EvalConfig, device: torch.device, parts: dict | None = None) -> Agent:
    """The agent the protocol runs: the frozen model, the configured planner, and the run's policy, critic and probe."""
    model = frozen(model, device)
    parts = {k: (v.to(device) if isinstance(v, torch.nn.Module) else v) for k, v in (parts or {}).items()}
    return Agent(model, planner=cfg.planner, planning=cfg.planning, bound=make_world(env_id, 1).spec.max_step,
                 surprise=cfg.surprise, boredom=cfg.boredom, **parts)


def make_hierarchical_actor(model: JEPA, level2, env_id: str, cfg: EvalConfig,
                            device: torch.device, critic2=None) -> HierarchicalActor:
    """The hierarchical actor the protocol runs: both frozen levels, the level-2 critic if the run has one
    (``amia.level2_critic``), and the configured planner(s)."""
    if level2 is None:
        raise GoalReachingError("hierarchical Mode-2 needs the run's level 2 (`amia train --levels 2`)")
    if cfg.task != "reach" or cfg.mode != 2:
        raise GoalReachingError(f"hierarchical Mode-2 plays the reach task in mode 2, not task {cfg.task!r} in "
                                f"mode {cfg.mode}")
    model = frozen(model, device)
    level2 = level2.to(device).eval().requires_grad_(False)
    try:
        if critic2 is not None:
            critic2 = critic2.to(device).eval().requires_grad_(False)
        return HierarchicalActor(model, level2, cfg.planner, cfg.hierarchy, bound=make_world(env_id, 1).spec.max_step,
                                 critic2=critic2)
    except ValueError as e:
        raise GoalReachingError(str(e)) from None


def run_episodes(model: JEPA, env_id: str, cfg: EvalConfig, device: torch.device | str = "cpu",
                 progress: bool = True, record: int = 0, parts: dict | None = None, level2=None,
                 critic2=None) -> dict:
    """Run the protocol; returns per-episode arrays (final distances, ever-within-strict, true positions) and
    optional traces. ``parts``: the run's ``policy``, ``critic`` and ``position`` probe (from ``amia distill``);
    ``level2``: the run's H-JEPA level 2 (``amia.hjepa.load_level2``), needed when ``cfg.hierarchical``, and
    ``critic2`` its critic (``amia.level2_critic.load_level2_critic``; ``None``: level 2 plans on distance alone).

    ``record`` keeps, for that many episodes, the frames, goal positions and each plan's predicted states
    (hierarchical: also the subgoals, the goal switch and level 2's predicted states).
    """
    if cfg.planner not in PLANNERS:
        raise GoalReachingError(f"unknown planner {cfg.planner!r}; known: {', '.join(PLANNERS)}")
    check_compatible(model, env_id)
    if cfg.hierarchical and cfg.boredom.weight:
        raise GoalReachingError("boredom is a term of flat Mode-2; hierarchical Mode-2 does not use it (set "
                                "boredom.weight=0 or drop --hierarchical)")
    task = eval_task(cfg)
    device = torch.device(device)
    steps = cfg.steps(env_id)
    if cfg.hierarchical:
        agent = make_hierarchical_actor(model, level2, env_id, cfg, device, critic2)
    else:
        agent = make_agent(model, env_id, cfg, device, parts)
    pairs = task_episodes(env_id, task, cfg.episodes, cfg.seed)
    world, goal_world = make_world(env_id, cfg.episodes), make_world(env_id, cfg.episodes)
    world.set_state(pairs["start"].astype(np.float64))
    goal_obs, _ = goal_world.set_state(pairs["goal"].astype(np.float64))
    goal_xy = pairs["goal"][:, :2]
    point = None
    if task.away_weight:
        horizon = task.horizon or cfg.planning.horizon
        point = moving_point(goal_xy, pairs["start"][:, :2], task.point_speed, steps + horizon + 1)
    name = (f"hierarchical {cfg.planner}" if cfg.hierarchical else cfg.planner) if task.mode == 2 else "policy"
    with tqdm(total=steps, desc=f"eval {name}", unit="step", disable=not progress) as bar:
        if cfg.hierarchical:
            out = agent.run(world, goal_obs, steps, seed=cfg.seed, record=record, progress=bar.update)
        else:
            out = agent.run(world, goal_obs, task, steps, cfg.replan_every, seed=cfg.seed,
                            policy_init=cfg.policy_init, point=point, record=record, progress=bar.update)
    dist = np.linalg.norm(out["positions"] - goal_xy[:, None], axis=-1)
    result = {"final_distance": dist[:, -1], "ever_strict": (dist[:, 1:] < STRICT_SUCCESS_RADIUS).any(1),
              "goal_xy": goal_xy, "positions": out["positions"], "trace": out["trace"] if record else None,
              "success": dist[:, -1] < SUCCESS_RADIUS, "surprises": out["surprises"],
              "explored_steps": out["explored_steps"]}
    if task.has_region:
        inside = inside_region(out["positions"][:, 1:], task.region)
        result["steps_inside"] = inside.sum(1)
        result["success"] = result["success"] & (result["steps_inside"] == 0)
    if task.away_weight:
        gap = np.linalg.norm(out["positions"] - point[:, : steps + 1], axis=-1)
        result["min_point_distance"] = gap.min(1)
        result["success"] = result["min_point_distance"] >= task.away_radius
    return result


def eval_task(cfg: EvalConfig) -> TaskConfig:
    """The configurator's task for this protocol run (mode, critic weight and final weight from ``cfg``)."""
    changes = {} if cfg.forbid_weight is None else {"forbid_weight": cfg.forbid_weight}
    return configure(cfg.task, mode=cfg.mode, final_weight=cfg.final_weight, critic_weight=cfg.critic_weight,
                     horizon=cfg.planning.horizon, **changes)


def timing(model: JEPA, env_id: str, cfg: EvalConfig, device: torch.device | str = "cpu",
           parts: dict | None = None, level2=None, critic2=None) -> dict:
    """Wall time of one episode at batch size 1: ``ms_per_plan_median`` (median of the warm re-planning calls in
    Mode-2, of the policy's actions in Mode-1, perception included) and ``ms_per_action_mean`` (all decision time
    over all actions: Mode-2's re-planning amortised over the ``replan_every`` actions it serves)."""
    device = torch.device(device)
    if cfg.hierarchical:
        return hierarchical_timing(model, level2, env_id, cfg, device, critic2)
    task = eval_task(cfg)
    agent = make_agent(model, env_id, cfg, device, parts)
    pairs = task_episodes(env_id, task, 1, cfg.seed)
    world, goal_world = make_world(env_id, 1), make_world(env_id, 1)
    obs, _ = world.set_state(pairs["start"].astype(np.float64))
    goal = agent.perceive(goal_world.set_state(pairs["goal"].astype(np.float64))[0])
    if task.away_weight:
        raise GoalReachingError("timing the keep-away task is not supported; time the reach task")
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    per_call, total, actions = [], 0.0, None
    trail = Trail(cfg.boredom) if cfg.boredom.weight else None
    if trail is not None:  # a full memory from the start: the term's largest cost
        start = agent.perceive(obs)
        for _ in range(cfg.boredom.memory):
            trail.add(start)
    steps = (cfg.timing_calls + 1) * cfg.replan_every
    for t in range(steps):
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode(task.mode == 1):
            s = agent.perceive(obs)
            if trail is not None:
                trail.add(s)
            if task.mode == 1:
                a = agent.act(s, goal)
            else:
                if t % cfg.replan_every == 0:
                    actions = agent.plan(task, s, goal, actions, cfg.replan_every, cfg.policy_init, gen, trail=trail)
                a = actions[:, t % cfg.replan_every]
        sync()
        dt = time.perf_counter() - t0
        if t >= cfg.replan_every:  # the first re-planning period is the cold start
            total += dt
            if task.mode == 1 or t % cfg.replan_every == 0:
                per_call.append(dt)
        obs, _ = world.step(a.detach().cpu().numpy())
    return {"ms_per_plan_median": round(1000 * statistics.median(per_call), 3),
            "ms_per_action_mean": round(1000 * total / (steps - cfg.replan_every), 3)}


def hierarchical_timing(model: JEPA, level2, env_id: str, cfg: EvalConfig, device: torch.device,
                        critic2=None) -> dict:
    """``timing`` for hierarchical Mode-2: ``ms_per_plan_median`` is the median wall time of the steps at which
    level 1 re-plans (level 2's re-plan included when it is due), ``ms_per_level2_plan_median`` of those at
    which both levels re-plan; ``ms_per_action_mean`` amortises all of it over every action. The first level-2
    period (cold starts) is left out."""
    actor = make_hierarchical_actor(model, level2, env_id, cfg, device, critic2)
    h = cfg.hierarchy
    every2 = h.level2_every(actor.stride)
    pairs = task_episodes(env_id, eval_task(cfg), 1, cfg.seed)
    world, goal_world = make_world(env_id, 1), make_world(env_id, 1)
    obs, _ = world.set_state(pairs["start"].astype(np.float64))
    ep = actor.begin(goal_world.set_state(pairs["goal"].astype(np.float64))[0], cfg.seed)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    per_call, per_call2, total = [], [], 0.0
    steps = every2 + max(1, cfg.timing_calls) * h.replan_every
    for t in range(steps):
        sync()
        t0 = time.perf_counter()
        a = actor.act(ep, obs, t)
        sync()
        dt = time.perf_counter() - t0
        if t >= every2:
            total += dt
            if t % h.replan_every == 0:
                per_call.append(dt)
            if t % every2 == 0:
                per_call2.append(dt)
        obs, _ = world.step(a.detach().cpu().numpy())
    return {"ms_per_plan_median": round(1000 * statistics.median(per_call), 3),
            "ms_per_level2_plan_median": round(1000 * statistics.median(per_call2), 3) if per_call2 else None,
            "ms_per_action_mean": round(1000 * total / (steps - every2), 3)}


@torch.no_grad()
def fit_level2_probe(model: JEPA, level2, data_path, device: torch.device, windows: int = 512,
                     seed: int = 0) -> LinearProbe:
    """A linear probe from level-2 states to the agent's (x, y), fit on frames of a trajectory file (as in
    ``amia.hjepa.horizon_report``): each level-2 state pools the ``span`` level-1 states ending at the frame."""
    span = level2.cfg.span
    batch = _windows(WindowSampler(data_path, span, 256, seed=seed), windows)  # span + 1 frames per window
    s1 = _encode(model, batch["obs"], device)[:, 1:]  # (N, span, D1)
    s2 = level2.encode(s1.to(device)).cpu()
    return LinearProbe.fit(s2, torch.from_numpy(batch["state"][:, -1, :2]))


def time_per_plan(model: JEPA, env_id: str, cfg: EvalConfig, device: torch.device | str = "cpu") -> float:
    """Median wall time (ms) of one warm-started re-planning call for one episode (batch size 1)."""
    return timing(model, env_id, cfg, device)["ms_per_plan_median"]


def evaluate(model: JEPA, env_id: str, cfg: EvalConfig, device: torch.device | str = "cpu",
             progress: bool = True, parts: dict | None = None, level2=None, critic2=None) -> dict:
    """The protocol's summary for one planner (or the policy, in Mode-1) on one task; hierarchical Mode-2 with
    ``cfg.hierarchical`` (``level2``: the run's level 2), which adds ``hierarchical: true``, both horizons,
    the stride and the planning compute (``predictor_calls_per_step``, ``amia.actor.compute``)."""
    out = run_episodes(model, env_id, cfg, device, progress, parts=parts, level2=level2, critic2=critic2)
    d = out["final_distance"]
    r = {"env": env_id, "task": cfg.task, "mode": cfg.mode, "planner": cfg.planner if cfg.mode == 2 else "policy",
         "policy_init": cfg.policy_init, "critic_weight": cfg.critic_weight,
         "horizon": cfg.hierarchy.level1.horizon if cfg.hierarchical else cfg.planning.horizon,
         "hierarchical": cfg.hierarchical, "episodes": cfg.episodes, "seed": cfg.seed, "max_steps": cfg.steps(env_id),
         "success_rate": float(np.mean(out["success"])),
         "strict_success_rate": float(np.mean(out["ever_strict"])),
         "mean_final_distance_px": float(np.mean(d)),
         "final_distance_px": [round(float(x), 2) for x in d]}
    if cfg.boredom.weight:
        r.update(boredom_weight=cfg.boredom.weight, boredom=dataclasses.asdict(cfg.boredom))
    watch = cfg.hierarchy.surprise if cfg.hierarchical else cfg.surprise
    if watch.enabled:
        r.update(surprises=out["surprises"],
                 explored_step_fraction=out["explored_steps"] / (cfg.episodes * cfg.steps(env_id)))
    if "steps_inside" in out:
        r["region_entry_rate"] = float(np.mean(out["steps_inside"] > 0))
        r["steps_inside_region"] = int(out["steps_inside"].sum())
    if "min_point_distance" in out:
        r["mean_min_point_distance_px"] = float(np.mean(out["min_point_distance"]))
    if cfg.hierarchical:
        h, k = cfg.hierarchy, level2.cfg.stride
        r.update(planner2=h.planner2 or cfg.planner, level2_horizon=h.level2.horizon, stride=k,
                 level2_critic_weight=h.critic_weight if critic2 is not None else 0.0,
                 replan_every=h.replan_every, replan2_every=h.level2_every(k),
                 predictor_calls_per_step=hierarchical_calls_per_step(cfg.planner, h.level1, h.replan_every,
                                                                      h.planner2 or cfg.planner, h.level2,
                                                                      h.level2_every(k),
                                                                      level2_factor=2 if critic2 is not None
                                                                      and h.critic_weight else 1,
                                                                      surprise=h.surprise.enabled))
    elif cfg.mode == 2:
        r["predictor_calls_per_step"] = flat_calls_per_step(cfg.planner, cfg.planning, cfg.replan_every,
                                                            surprise=cfg.surprise.enabled)
    if cfg.timing_calls and "min_point_distance" not in out:
        r.update(timing(model, env_id, cfg, device, parts, level2, critic2))
    else:
        r.update(ms_per_plan_median=None, ms_per_action_mean=None)
    return r
