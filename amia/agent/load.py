"""Building an actor from a run directory, in one place: which settings combine is decided here, once.

``AgentConfig`` holds every setting of how the agent acts (task, mode, planner, hierarchy, surprise, boredom);
``load_agent(run_dir, cfg)`` reads the run's trained parts (world model, policy, critic, position read-out,
level 2 and its critic) and returns the actor that those settings describe (``amia.agent.actor.Actor``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from amia.agent.action_box import ActionBox, BoxedActor
from amia.agent.actor import Actor
from amia.agent.flat import FlatActor
from amia.agent.hierarchical import HierarchicalActor, HierarchyConfig
from amia.agent.hierarchical_oracle import HierarchicalOracle
from amia.agent.reflex import ReflexActor
from amia.agent.surprise import SurpriseConfig
from amia.cost.boredom import BoredomConfig
from amia.cost.configurator import TASKS, TaskConfig, configure
from amia.envs import ENV_SPECS, make_world
from amia.infra.run_dir import load_level2, load_level2_critic, load_model, load_parts
from amia.infra.validate import ConfigError, at_least, check, check_device, one_of
from amia.models.jepa import JEPA
from amia.models.level2 import HJEPAConfig
from amia.planning.oracle import ORACLE_WORLDS, OracleActor
from amia.planning.planners import PLANNERS, PlannerConfig
from amia.planning.uncertainty import UncertaintyConfig


class AgentError(ConfigError):
    """Settings that cannot combine, or a run that lacks a part that the settings need."""


@dataclass
class AgentConfig:
    """How the agent acts (``key=value`` overrides on ``amia eval``; ``act.KEY=value`` on ``amia refine``).

    ``task``: the configurator's task (reach, reach_avoid, keep_away); ``mode`` 2 plans with ``planner``, 1 acts
    with the distilled policy; ``policy_init`` starts every Mode-2 plan from the policy rolled through the
    predictor and refines it for ``planning.policy_iterations`` (None, the default: whenever the run has a
    distilled policy, in flat Mode-2 on the reach task; false: never); ``critic_weight`` adds the critic's value
    of the horizon's last state to the cost; ``forbid_weight`` replaces the task's weight of the forbidden-region
    term (0: plan as if unconstrained), and ``region`` its rectangle ``(x0, y0, x1, y1)`` (e.g. the pit of
    ``amia/Hazard-v0``). ``replan_every``: steps between re-plans; ``final_weight``: the goal cost's weight on the
    horizon's last step. ``hierarchical`` acts by hierarchical Mode-2 (reach task only) with the settings
    ``hierarchy`` (which replace ``replan_every``, ``final_weight`` and ``planning``). ``surprise`` (flat Mode-2 and
    Mode-1): exploration where the model was wrong (``surprise.enabled`` None, the default: on for the reach
    task without uncertainty); ``boredom`` (flat Mode-2): the intrinsic cost of lingering away from the goal.
    ``uncertainty`` (flat Mode-2, a run trained with a latent): sampled futures and the risk measure that combines
    them. ``reflex`` (Mode-1): act through the run's reflex (``amia.models.reflex``, made by ``amia reflex``), the
    policy compiled down to the pixels, instead of perception and policy.
    """

    planner: str = "gd"
    task: str = "reach"
    mode: int = 2
    policy_init: bool | None = None
    critic_weight: float = 0.0
    forbid_weight: float | None = None
    region: tuple[float, float, float, float] | None = None
    replan_every: int = 4
    final_weight: float = 30.0
    planning: PlannerConfig = field(default_factory=PlannerConfig)
    hierarchical: bool = False
    hierarchy: HierarchyConfig = field(default_factory=HierarchyConfig)
    surprise: SurpriseConfig = field(default_factory=SurpriseConfig)
    boredom: BoredomConfig = field(default_factory=BoredomConfig)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    reflex: bool = False

    def __post_init__(self):
        one_of(self, "planner", PLANNERS)
        one_of(self, "task", TASKS)
        one_of(self, "mode", (1, 2))
        at_least(self, 1, "replan_every")
        at_least(self, 0, "final_weight", "critic_weight")
        check(self.region is None or (len(self.region) == 4 and self.region[0] < self.region[2]
                                      and self.region[1] < self.region[3]), "region",
              None if self.region is None else list(self.region),
              "a rectangle [x0, y0, x1, y1] with x0 < x1 and y0 < y1 (or null: the task's own)")
        check(self.forbid_weight is None or self.forbid_weight >= 0, "forbid_weight", self.forbid_weight,
              "a number >= 0 (or null: the task's own weight)")
        check(self.hierarchical or self.planning.horizon >= self.replan_every, "planning.horizon", self.planning.horizon,
              f"an integer >= replan_every ({self.replan_every}): a plan must last until the next re-plan")
        if self.reflex and (self.mode != 1 or self.hierarchical):
            raise AgentError("reflex=true acts in Mode-1: set mode=1 (--mode 1) and hierarchical=false")
        if self.hierarchical:
            extra = [name for name, on in (("mode=1", self.mode != 2), (f"task={self.task}", self.task != "reach"),
                                           ("policy_init", self.policy_init), ("critic_weight", self.critic_weight),
                                           ("uncertainty", self.uncertainty.active),
                                           ("boredom.weight", self.boredom.weight)) if on]
            if extra:
                raise AgentError(f"hierarchical Mode-2 plans the reach task with its own costs; it does not take "
                                 f"{', '.join(extra)}")

    def require_flat_mode2(self, what: str) -> None:
        """Refuse settings other than flat Mode-2 where ``what`` (a command) acts only that way."""
        if self.hierarchical or self.mode != 2:
            raise AgentError(f"{what} acts in flat Mode-2 (hierarchical=false, mode=2)")

    def starts_from_policy(self, parts: dict) -> bool:
        """Whether Mode-2 plans start from the policy: ``policy_init`` if set, else (``None``) whenever ``parts`` hold
        a distilled policy and the agent plans the reach task in flat Mode-2 without uncertainty."""
        if self.policy_init is not None:
            return self.policy_init
        return ("policy" in parts and self.mode == 2 and not self.hierarchical and self.task == "reach"
                and not self.uncertainty.active)

    def watches_surprise(self, from_policy: bool) -> bool:
        """Whether the flat actor runs the surprise watch: ``surprise.enabled`` if set, else (``None``) on the reach
        task without uncertainty when the actor acts from its policy (Mode-1, or Mode-2 started from the policy).
        A world that pushes the agent at random would surprise it without a model error; on TwoRooms' tuning seed 5
        the policy-started actors gained with it (0.975 -> 1.0) and plain gradient Mode-2 lost (0.955 -> 0.91)."""
        if self.surprise.enabled is not None:
            return self.surprise.enabled
        return from_policy and self.task == "reach" and not self.uncertainty.active

    def task_config(self) -> TaskConfig:
        """The configurator's task for these settings (mode, critic weight, final weight, horizon)."""
        changes = {} if self.forbid_weight is None else {"forbid_weight": self.forbid_weight}
        if self.region is not None:
            changes["region"] = tuple(self.region)
        return configure(self.task, mode=self.mode, final_weight=self.final_weight, critic_weight=self.critic_weight,
                         horizon=self.planning.horizon, uncertainty=self.uncertainty, **changes)


def check_compatible(model: JEPA, env_id: str) -> None:
    """The model must have been trained on this world's observations and action space."""
    world = make_world(env_id, 1)
    if tuple(model.obs_shape) != tuple(world.obs_shape):
        raise AgentError(f"the model was trained on observations {model.obs_shape}, {env_id} gives {world.obs_shape}")
    if model.action_dim != 2:
        raise AgentError(f"the model was trained with {model.action_dim}-D actions, {env_id} has 2-D actions")


def frozen(module: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """A trained part for acting: on ``device``, in eval mode, without gradients for its weights, convolution
    weights channels-last (PyTorch's CPU convolutions run faster on them at batch size 1; same numbers)."""
    return module.to(device).eval().requires_grad_(False).to(memory_format=torch.channels_last)


def build_actor(model: JEPA, cfg: AgentConfig, bound: float, device: torch.device | str = "cpu",
                parts: dict | None = None, level2=None, critic2=None, **learning) -> Actor:
    """The actor that ``cfg`` describes, from trained parts already in memory (``parts``: ``policy``, ``critic``,
    ``position`` as ``amia distill`` makes them; ``level2`` and ``critic2`` for hierarchical Mode-2). ``bound``:
    the action box's half-width (a model with an ``action_box`` plans in ``[-1, 1]^A`` and acts through
    ``BoxedActor`` instead). ``learning``: what a learning loop adds to a flat actor (``memory``,
    ``label_span``, ``first_episode``: ``FlatActor``)."""
    parts = {k: v for k, v in (parts or {}).items() if v is not None}
    task = cfg.task_config()
    needs = [("policy", (cfg.mode == 1 and not cfg.reflex) or bool(cfg.policy_init)), ("critic", bool(cfg.critic_weight)),
             ("position", bool(task.forbid_weight or task.away_weight or task.evade_weight))]
    missing = [name for name, needed in needs if needed and name not in parts]
    if missing:
        raise AgentError(f"these settings need the run's {' and '.join(missing)} (run `amia distill` first)")
    if cfg.uncertainty.active and model.predictor.latent is None:
        raise AgentError("uncertainty.futures / uncertainty.risk=adversarial need a world model with a latent "
                         "(train with jepa.predictor.latent=discrete|gaussian and jepa.predictor.latent_dim=K)")
    box = None if model.action_box is None else ActionBox(*(tuple(v) for v in model.action_box))
    bound = bound if box is None else 1.0
    model = frozen(model, device)
    if cfg.reflex:
        if parts.get("reflex") is None:
            raise AgentError("reflex=true needs the run's reflex (run `amia reflex --run RUN` first)")
        watch = dataclasses.replace(cfg.surprise, enabled=cfg.watches_surprise(True))
        actor = ReflexActor(parts["reflex"], model.encoder.cpu(), watch)
        return actor if box is None else BoxedActor(actor, box)
    if cfg.hierarchical:
        if learning:
            raise AgentError(f"hierarchical Mode-2 does not take {', '.join(learning)}")
        if level2 is None:
            raise AgentError("hierarchical Mode-2 needs the run's level 2 (`amia train --levels 2`)")
        actor = HierarchicalActor(model, frozen(level2, device), cfg.planner, cfg.hierarchy, bound=bound,
                                  critic2=None if critic2 is None else frozen(critic2, device))
    else:
        parts = {k: (v.to(device) if isinstance(v, torch.nn.Module) else v) for k, v in parts.items() if k != "reflex"}
        from_policy = cfg.starts_from_policy(parts)
        watch = dataclasses.replace(cfg.surprise, enabled=cfg.watches_surprise(from_policy or cfg.mode == 1))
        actor = FlatActor(model, task, cfg.planner, cfg.planning, bound, cfg.replan_every, from_policy,
                          surprise=watch, boredom=cfg.boredom, **parts, **learning)
    return actor if box is None else BoxedActor(actor, box)


def action_bound(model: JEPA, env_id: str) -> float:
    """The planners' bound for a model: 1 for one trained on a declared box (``[-1, 1]^A``), else the half-width of
    amia's world ``env_id``."""
    if model.action_box is not None:
        return 1.0
    if env_id in ENV_SPECS:
        return make_world(env_id, 1).spec.max_step
    raise AgentError(f"the run's data declared no action bounds and {env_id!r} is not one of amia's worlds "
                     f"({', '.join(ENV_SPECS)}); collect its data with `amia collect`, which records them")


def load_agent(run_dir: str | Path, cfg: AgentConfig | None = None, device: str = "cpu",
               env_id: str | None = None) -> Actor:
    """The actor of a trained run (``amia.agent.actor.Actor``): ``cfg`` says how it acts (default: Mode-2 with
    the gradient planner), ``env_id`` the world it acts in (default: the one it was trained on)."""
    cfg = cfg or AgentConfig()
    model, saved = load_model(run_dir, check_device(device))
    env_id = env_id or saved["env_id"]
    if env_id in ENV_SPECS:
        check_compatible(model, env_id)
    level2 = critic2 = None
    if cfg.hierarchical:
        level2, _ = load_level2(run_dir, device, level1=model)
        critic2 = load_level2_critic(run_dir, device, level2=level2)
    parts = load_parts(run_dir, model.cfg.encoder.dim)
    return build_actor(model, cfg, action_bound(model, env_id), device, parts, level2, critic2)


def oracle_agent(cfg: AgentConfig, env_id: str) -> OracleActor | HierarchicalOracle:
    """The oracle acting with ``cfg``'s planner and task in ``env_id``: Mode-2 on the true dynamics, without model,
    policy or critic; flat (``amia.planning.oracle``) or, with ``cfg.hierarchical``, hierarchical
    (``amia.agent.hierarchical_oracle``, level-2 stride ``HJEPAConfig.stride``)."""
    if env_id not in ORACLE_WORLDS:
        raise AgentError(f"no oracle for {env_id!r}: it exists for {', '.join(ORACLE_WORLDS)}")
    if cfg.mode != 2 or cfg.policy_init or cfg.critic_weight:
        raise AgentError("the oracle is Mode-2 without policy or critic: drop --mode 1, --policy-init and "
                         "--critic-weight")
    bound = ENV_SPECS[env_id].max_step
    if cfg.hierarchical:
        if env_id == "amia/Chaser-v0":
            raise AgentError("the hierarchical oracle plans for a lone agent: amia/Chaser-v0 has a chaser")
        return HierarchicalOracle.for_world(cfg.planner, cfg.hierarchy, bound, HJEPAConfig().stride)
    return OracleActor(cfg.task_config(), cfg.planner, cfg.planning, bound, cfg.replan_every)


__all__ = ["AgentConfig", "AgentError", "action_bound", "build_actor", "check_compatible", "frozen", "load_agent",
           "oracle_agent"]
