"""The agent (Sec. 3, Fig. 2): six modules wired into one perception-action loop, for many episodes at once.

- perception: ``model.encoder`` (``s = Enc(x)``);
- world model: ``model.predictor`` (``s[t+1] = Pred(s[t], a[t])``);
- cost: built per task by the configurator from immutable intrinsic terms and the trainable critic;
- actor: Mode-2, a planner minimising the cost through the world model (Sec. 3.1.2), or Mode-1, the policy
  compiled from it (Sec. 3.1.1, 3.1.3), which can also propose Mode-2's initial plan;
- short-term memory: every perceived state is written with its intrinsic cost (and, optionally, every imagined one);
- configurator: ``amia.configurator`` (the task's weights, mode and horizon).
Each module is a field and can be swapped for anything with the same interface.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from amia.actor.planners import PlannerConfig, plan, shift
from amia.actor.policy import Policy, policy_rollout
from amia.actor.boredom import BoredomConfig, Trail
from amia.actor.surprise import Surprise, SurpriseConfig
from amia.configurator import TaskConfig, build_cost
from amia.cost import Cost, Critic, Position
from amia.jepa import JEPA
from amia.memory import ShortTermMemory


@dataclass
class Agent:
    """A trained JEPA plus actor settings (``bound``: the action box's half-width; ``surprise``: exploration where
    the world model was wrong, ``amia.actor.surprise``, off by default; ``boredom``: the intrinsic cost of lingering,
    ``amia.actor.boredom``, off by default), optional policy, critic, position probe and memory."""

    model: JEPA
    planner: str = "gd"
    planning: PlannerConfig = field(default_factory=PlannerConfig)
    bound: float = 2.45
    policy: Policy | None = None
    critic: Critic | None = None
    position: Position | None = None
    memory: ShortTermMemory | None = None
    remember_imagined: bool = False
    surprise: SurpriseConfig = field(default_factory=SurpriseConfig)
    boredom: BoredomConfig = field(default_factory=BoredomConfig)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def perceive(self, obs: np.ndarray) -> torch.Tensor:
        """Perception: frames ``uint8 (B, C, H, W)`` -> states ``(B, D)``."""
        return self.model.encoder(torch.from_numpy(obs).to(self.device))

    def cost(self, task: TaskConfig, goal: torch.Tensor, point: torch.Tensor | None = None):
        """The task's cost module for goal states ``(B, D)`` (and the moving point over the horizon)."""
        d = self.model.cfg.encoder.dim
        if goal.dim() != 2 or goal.shape[1] != d:
            raise ValueError(f"goal states should have shape (B, {d}), got {tuple(goal.shape)}")
        return build_cost(task, goal, self.position, point, self.critic)

    def plan(self, task: TaskConfig, s: torch.Tensor, goal: torch.Tensor, previous: torch.Tensor | None,
             shift_by: int, policy_init: bool, generator, point: torch.Tensor | None = None, cold: bool = False,
             trail: Trail | None = None):
        """Mode-2 (Sec. 3.1.2): the plan ``(B, T, A)`` minimising the task's cost from states ``s``.

        Warm-started from ``previous`` shifted by ``shift_by`` steps, or from the policy rolled through the
        predictor (``policy_init``, Sec. 3.1.3; the previous plan stays a second proposal); a cold start (or
        ``cold``) uses the full iteration budget and its random restarts, the proposals being among them.
        """
        cfg = self.planning if not task.horizon else dataclasses.replace(self.planning, horizon=task.horizon)
        if policy_init:
            if self.policy is None:
                raise ValueError("policy_init needs a trained policy (run `amia distill`)")
            init = policy_rollout(self.policy, self.model.predictor, s, goal, cfg.horizon)
            if previous is not None:  # two proposals: the policy's and the previous plan's
                init = torch.stack([init, shift(previous, shift_by)], dim=1)
        elif previous is not None:
            init = shift(previous, shift_by)
        else:
            init = torch.zeros(s.shape[0], cfg.horizon, self.model.action_dim, device=s.device)
        cost = self.cost(task, goal, point)
        bored = trail.term(goal) if trail is not None and self.boredom.weight else None
        if bored is not None:
            cost = Cost({**cost.intrinsic, "bored": (self.boredom.weight, bored)}, cost.critic)
        result = plan(self.planner, self.model.predictor.rollout, cost, s, init,
                      self.bound, cfg, warm=not cold and (previous is not None or policy_init), generator=generator)
        return result.actions

    @torch.no_grad()
    def act(self, s: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Mode-1 (Sec. 3.1.1): one forward pass of the policy, ``(B, D) -> (B, A)``."""
        if self.policy is None:
            raise ValueError("Mode-1 needs a trained policy (run `amia distill`)")
        return self.policy(s, goal)

    def run(self, world, goal_obs: np.ndarray, task: TaskConfig, steps: int, replan_every: int = 4,
            seed: int = 0, policy_init: bool = False, label: bool = False, label_span: int = 1,
            point: np.ndarray | None = None, episode_ids: np.ndarray | None = None, record: int = 0,
            progress=None) -> dict:
        """The perception-action loop for the ``B`` episodes of a batched ``world`` (already at its start states).

        Mode (``task.mode``) 2 re-plans every ``replan_every`` steps and executes the plan; mode 1 executes the
        policy. ``label`` returns visited states with the action Mode-2 plans there (``labels``), for distillation:
        the mean of the plan's next ``label_span`` actions (one action is weakly determined by the energy, the
        displacement over a few is not). In mode 2 every step is labelled from the plan being executed; mode 1
        labels every ``replan_every`` steps with a cold, full-budget plan (the policy's proposal among its starts).
        ``point (B, steps + 1 + T, 2)``: the moving point's positions (keep-away). Returns true positions
        ``(B, steps + 1, 2)``, ``surprises`` and ``explored_steps`` (``amia.actor.surprise``), and the labels and
        the recorded frames / plans of ``record`` episodes if asked.
        """
        dev = self.device
        gen = torch.Generator(device=dev).manual_seed(seed)
        goal = self.perceive(goal_obs)
        b = goal.shape[0]
        ids = torch.as_tensor(np.arange(b) if episode_ids is None else episode_ids, device=dev)
        pt = None if point is None else torch.as_tensor(point, dtype=torch.float32, device=dev)
        horizon = task.horizon or self.planning.horizon
        watch = Surprise(self.surprise, self.model.predictor.rollout, self.bound, gen, replan_every)
        trail = Trail(self.boredom) if self.boredom.weight else None
        obs, positions = world.render(), [world.state[:, :2].copy()]
        plan_actions, labels, trace = None, {"state": [], "context": [], "action": []}, {"frames": [], "plans": []}
        for t in range(steps):
            s = self.perceive(obs)
            if trail is not None:
                trail.add(s)
            if self.memory is not None:
                now = self.cost(dataclasses.replace(task, critic_weight=0.0), goal,
                                None if pt is None else pt[:, t:t + 1])
                self.memory.write(ids, t, s, now.intrinsic_energy(s[:, None]).detach(), goal)
            k = t % replan_every
            future = None if pt is None else pt[:, t + 1:t + 1 + horizon]
            if task.mode == 2:
                if k == 0:
                    plan_actions = self.plan(task, s, goal, plan_actions, replan_every, policy_init, gen, future,
                                             trail=trail)
                    self._remember_plan(ids, t, s, plan_actions, goal, task, future, record, trace)
                a = plan_actions[:, k]
                if label:
                    self._label(labels, s, goal, plan_actions[:, k:k + label_span].mean(1))
            else:
                a = self.act(s, goal)
                if label and k == 0:
                    planned = self.plan(task, s, goal, None, replan_every, self.policy is not None, gen, future, cold=True)
                    self._label(labels, s, goal, planned[:, :label_span].mean(1))
            a = watch.step(s, a, t, goal)
            obs, info = world.step(a.detach().cpu().numpy())
            positions.append(info["state"][:, :2].copy())
            if record:
                trace["frames"].append(obs[:record])
            if progress is not None:
                progress(1)
        out = {"positions": np.stack(positions, axis=1), "trace": trace, "surprises": watch.surprises,
               "explored_steps": watch.explored_steps}
        if label:
            out["labels"] = {k: torch.cat(v) for k, v in labels.items()}
        return out

    @staticmethod
    def _label(labels: dict, s: torch.Tensor, goal: torch.Tensor, a: torch.Tensor) -> None:
        labels["state"].append(s.detach().cpu())
        labels["context"].append(goal.detach().cpu())
        labels["action"].append(a.detach().cpu())

    @torch.no_grad()
    def _remember_plan(self, ids, t, s, actions, goal, task, future, record, trace) -> None:
        if not (record or (self.memory is not None and self.remember_imagined)):
            return
        imagined = self.model.predictor.rollout(s, actions)  # (B, T, D)
        if record:
            trace["plans"].append(imagined[:record].cpu())
        if self.memory is not None and self.remember_imagined:
            plain = dataclasses.replace(task, critic_weight=0.0)
            per_step = torch.stack([self.cost(plain, goal, None if future is None else future[:, i:i + 1])
                                    .intrinsic_energy(imagined[:, i:i + 1]) for i in range(imagined.shape[1])], 1)
            steps = imagined.shape[1]
            times = (t + 1 + torch.arange(steps, device=s.device)).repeat(len(ids))
            self.memory.write(ids.repeat_interleave(steps), times, imagined.flatten(0, 1), per_step.flatten(),
                              goal.repeat_interleave(steps, 0), imagined=True)
