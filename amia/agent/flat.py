"""The flat actor (Sec. 3, Fig. 2): perception, world model, cost, memory and one level of planning or policy.

- perception: ``model.encoder`` (``s = Enc(x)``); world model: ``model.predictor`` (``s[t+1] = Pred(s[t], a[t])``);
- cost: built per task by the configurator from immutable intrinsic terms and the trainable critic, plus boredom
  from the episode's trail of recent states;
- Mode-2 (``task.mode == 2``, Sec. 3.1.2): every ``replan_every`` steps, the plan ``(B, T, A)`` minimising the
  cost through the world model, warm-started from the previous plan, or from the policy rolled through the
  predictor (``policy_init``, Sec. 3.1.3); the plan is executed in between (receding horizon);
- Mode-1 (``task.mode == 1``, Sec. 3.1.1): one forward pass of the distilled policy per step;
- short-term memory: every perceived state is written with its intrinsic cost (and, optionally, every imagined
  one); the surprise watch compares perception with the model's prediction and explores where it failed.

Labels for distillation (``label_span`` > 0, Sec. 3.1.3): in Mode-2 every visited state is labelled with the
mean of the plan's next ``label_span`` actions; in Mode-1 every ``replan_every``-th state with the first actions
of a cold, full-budget plan (the policy's proposal one of its starts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from amia.agent.memory import ShortTermMemory
from amia.agent.surprise import Surprise, SurpriseConfig
from amia.cost.boredom import BoredomConfig, Trail
from amia.cost.configurator import TaskConfig, build_cost
from amia.cost.terms import Cost
from amia.models.critic import Critic
from amia.models.jepa import JEPA
from amia.models.policy import Policy, policy_rollout
from amia.models.probe import LinearProbe
from amia.planning.compute import flat_calls_per_step
from amia.planning.planners import PlannerConfig, plan, shift
from amia.planning.uncertainty import uncertain_planning


@dataclass
class FlatActor:
    """A trained JEPA and how it acts (``bound``: the action box's half-width); optional policy, critic, position
    read-out and memory. Follows ``amia.agent.actor.Actor``."""

    model: JEPA
    task: TaskConfig = field(default_factory=TaskConfig)
    planner: str = "gd"
    planning: PlannerConfig = field(default_factory=PlannerConfig)
    bound: float = 2.45
    replan_every: int = 4
    policy_init: bool = False
    policy: Policy | None = None
    critic: Critic | None = None
    position: LinearProbe | None = None
    memory: ShortTermMemory | None = None
    remember_imagined: bool = False
    surprise: SurpriseConfig = field(default_factory=SurpriseConfig)
    boredom: BoredomConfig = field(default_factory=BoredomConfig)
    label_span: int = 0
    first_episode: int = 0

    def __post_init__(self):
        if self.replan_every < 1:
            raise ValueError(f"replan_every must be >= 1, got {self.replan_every}")
        self.periods = {"plan": self.replan_every if self.task.mode == 2 else 1}
        self.warmup_steps = max(self.replan_every, self.boredom.memory if self.boredom.weight else 0)
        self.episodes_started = self.first_episode

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def horizon(self) -> int:
        return self.task.horizon or self.planning.horizon

    @property
    def plan_settings(self) -> PlannerConfig:
        """The planner's settings as used: the task's horizon, and re-plans from the policy's proposal with
        ``policy_restarts`` starts refined for ``policy_iterations`` (``policy_init``)."""
        p = self.planning
        if not self.policy_init:
            return dataclasses.replace(p, horizon=self.horizon)
        return dataclasses.replace(p, horizon=self.horizon, warm_iterations=p.policy_iterations, restarts=p.policy_restarts)

    @torch.no_grad()
    def perceive(self, obs: np.ndarray) -> torch.Tensor:
        """Perception: frames ``uint8 (B, C, H, W)`` -> states ``(B, D)``."""
        return self.model.encoder(torch.from_numpy(obs).to(self.device))

    def cost(self, goal: torch.Tensor, point: torch.Tensor | None = None, task: TaskConfig | None = None) -> Cost:
        """The task's cost module for goal states ``(B, D)`` (and the moving point over the horizon)."""
        d = self.model.cfg.encoder.dim
        if goal.dim() != 2 or goal.shape[1] != d:
            raise ValueError(f"goal states should have shape (B, {d}), got {tuple(goal.shape)}")
        return build_cost(task or self.task, goal, self.position, point, self.critic)

    def plan(self, s: torch.Tensor, goal: torch.Tensor, previous: torch.Tensor | None, policy_init: bool,
             generator: torch.Generator, point: torch.Tensor | None = None, cold: bool = False,
             trail: Trail | None = None) -> torch.Tensor:
        """Mode-2 (Sec. 3.1.2): the plan ``(B, T, A)`` minimising the task's cost from states ``s``.

        Warm-started from ``previous`` shifted by ``replan_every`` steps, or from the policy rolled through the
        predictor (``policy_init``; the previous plan stays a second proposal); a cold start (or ``cold``) uses
        the full iteration budget and its random restarts, the proposals being among them.
        """
        cfg = self.plan_settings
        if policy_init:
            if self.policy is None:
                raise ValueError("policy_init needs a trained policy (run `amia distill`)")
            init = policy_rollout(self.policy, self.model.predictor, s, goal, cfg.horizon)
            if previous is not None:  # two proposals: the policy's and the previous plan's
                init = torch.stack([init, shift(previous, self.replan_every)], dim=1)
        elif previous is not None:
            init = shift(previous, self.replan_every)
        else:
            init = torch.zeros(s.shape[0], cfg.horizon, self.model.action_dim, device=s.device)
        cost = self.cost(goal, point)
        bored = trail.term(goal) if trail is not None else None
        if bored is not None:
            cost = Cost({**cost.intrinsic, "bored": (self.boredom.weight, bored)}, cost.critic)
        rollout, cost = uncertain_planning(self.model.predictor, cost, self.task.uncertainty, s.shape[0], generator)
        warm = not cold and (previous is not None or policy_init)
        return plan(self.planner, rollout, cost, s, init, self.bound, cfg, warm=warm, generator=generator).actions

    @torch.no_grad()
    def mode1(self, s: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Mode-1 (Sec. 3.1.1): one forward pass of the policy, ``(B, D) -> (B, A)``."""
        if self.policy is None:
            raise ValueError("Mode-1 needs a trained policy (run `amia distill`)")
        return self.policy(s, goal)

    def reset(self, goal_obs: np.ndarray, seed: int = 0, record: int = 0, point: np.ndarray | None = None) -> None:
        """Start episodes towards the goals in ``goal_obs``; ``point (B, steps + 1 + T, 2)``: the moving point's
        positions (keep-away task)."""
        dev = self.device
        self.generator = torch.Generator(device=dev).manual_seed(seed)
        self.goal = self.perceive(goal_obs)
        b = self.goal.shape[0]
        self.ids = torch.arange(self.episodes_started, self.episodes_started + b, device=dev)
        self.episodes_started += b
        self.point = None if point is None else torch.as_tensor(point, dtype=torch.float32, device=dev)
        self.watch = Surprise(self.surprise, self.model.predictor.rollout, self.bound, self.generator,
                              self.replan_every)
        self.trail = Trail(self.boredom) if self.boredom.weight else None
        self.t, self.actions, self.record = 0, None, record
        self.trace: dict = {"plans": []}
        self.labels: dict[str, list] = {"state": [], "context": [], "action": []}

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Perceive, remember, re-plan when due (Mode-2) or ask the policy (Mode-1); actions ``(B, A)``."""
        with torch.inference_mode(self.task.mode == 1 and not self.label_span and self.memory is None):
            return self._act(obs).detach().cpu().numpy()

    def _act(self, obs: np.ndarray) -> torch.Tensor:
        t, pt, goal = self.t, self.point, self.goal
        s = self.perceive(obs)
        if self.trail is not None:
            self.trail.add(s)
        if self.memory is not None:
            now = self.cost(goal, None if pt is None else pt[:, t:t + 1], dataclasses.replace(self.task, critic_weight=0.0))
            self.memory.write(self.ids, t, s, now.intrinsic_energy(s[:, None]).detach(), goal)
        k = t % self.replan_every
        future = None if pt is None else pt[:, t + 1:t + 1 + self.horizon]
        if self.task.mode == 2:
            if k == 0:
                self.actions = self.plan(s, goal, self.actions, self.policy_init, self.generator, future, trail=self.trail)
                self._remember_plan(s, future)
            a = self.actions[:, k]
            if self.label_span:
                self._label(s, self.actions[:, k:k + self.label_span].mean(1))
        else:
            a = self.mode1(s, goal)
            if self.label_span and k == 0:
                planned = self.plan(s, goal, None, self.policy is not None, self.generator, future, cold=True)
                self._label(s, planned[:, :self.label_span].mean(1))
        self.t += 1
        return self.watch.step(s, a, t, goal)

    def report(self) -> dict:
        """Surprise counts, the trace of the recorded episodes and, with ``label_span``, the labels."""
        out = {"surprises": self.watch.surprises, "explored_steps": self.watch.explored_steps, "trace": self.trace}
        if self.label_span:
            out["labels"] = {k: torch.cat(v) for k, v in self.labels.items()}
        return out

    def describe(self) -> dict:
        mode2, u = self.task.mode == 2, self.task.uncertainty
        futures = 1
        if u.active and self.model.predictor.latent is not None:  # the predictor runs once per future (or candidate)
            latent = self.model.predictor.latent
            futures = (latent.dim if latent.kind == "discrete" else u.candidates) if u.risk == "adversarial" else u.futures
        return {"planner": self.planner if mode2 else "policy", "horizon": self.horizon,
                "replan_every": self.replan_every, "surprise_watch": self.surprise.enabled,
                "risk": u.risk if u.active else None, "futures": futures if u.active else None,
                "policy_init": self.policy_init and mode2,
                "predictor_calls_per_step": futures * flat_calls_per_step(self.planner, self.plan_settings, self.replan_every,
                                                                          surprise=self.surprise.enabled) if mode2 else None}

    def _label(self, s: torch.Tensor, a: torch.Tensor) -> None:
        for key, value in (("state", s), ("context", self.goal), ("action", a)):
            self.labels[key].append(value.detach().cpu())

    @torch.no_grad()
    def _remember_plan(self, s: torch.Tensor, future: torch.Tensor | None) -> None:
        if not (self.record or (self.memory is not None and self.remember_imagined)):
            return
        imagined = self.model.predictor.rollout(s, self.actions)  # (B, T, D)
        if self.record:
            self.trace["plans"].append(imagined[:self.record].cpu())
        if self.memory is not None and self.remember_imagined:
            plain = dataclasses.replace(self.task, critic_weight=0.0)
            per_step = torch.stack([self.cost(self.goal, None if future is None else future[:, i:i + 1], plain)
                                    .intrinsic_energy(imagined[:, i:i + 1]) for i in range(imagined.shape[1])], 1)
            steps = imagined.shape[1]
            times = (self.t + 1 + torch.arange(steps, device=s.device)).repeat(len(self.ids))
            self.memory.write(self.ids.repeat_interleave(steps), times, imagined.flatten(0, 1), per_step.flatten(),
                              self.goal.repeat_interleave(steps, 0), imagined=True)


__all__ = ["FlatActor"]
