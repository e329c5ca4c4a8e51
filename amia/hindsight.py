"""Goal-conditioned critics by temporal differences over hindsight goals (Sec. 3.3; the recipe of IQL / HIQL).

A critic ``TC(s, g) >= 0`` of a goal-reaching task predicts the intrinsic cost still to come from ``s``: the
task costs 1 per step (of ``stride`` frames) until the goal's state is reached, discounted by ``gamma``, so
``TC`` is the discounted number of steps to the goal. It is learned from stored trajectories alone (reward-
free data at level 2 of the H-JEPA, the agent's short-term memory at level 1), whatever behaviour made them:

- **hindsight goals**: each source frame is paired with a goal that is the frame itself (``goal_self``; target
  0), a later frame of its trajectory (``goal_future``; ``m >= 1`` steps later, ``m`` geometric with mean
  ``1 / (1 - future_gamma)``), or any stored frame (the rest), which teaches costs between trajectories;
- **temporal differences**: the target is ``1 + gamma * TC_target(s', g)``, ``s'`` the frame one step later,
  ``TC_target`` a Polyak-averaged copy (``target_tau``): costs propagate along stored paths and join paths
  that no single trajectory shows (stitching);
- **expectile regression** (``expectile`` > 0.5): targets below the prediction weigh more, so the critic learns
  the cost along the best of the stored paths rather than their average (a random walk's detours).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class HindsightTD:
    """The learning rule's settings. ``gamma``: discount per step; ``expectile``: the weight of targets below
    the prediction (0.5: the stored paths' average, toward 1: their shortest); ``goal_self`` / ``goal_future``:
    the fractions of goals that are the source itself / a later frame of its trajectory (``future_gamma``: the
    geometric spread of how many steps later), the rest random stored frames; ``target_tau``: Polyak rate of
    the target network."""

    gamma: float = 0.97
    expectile: float = 0.9
    goal_self: float = 0.2
    goal_future: float = 0.5
    future_gamma: float = 0.9
    target_tau: float = 0.005

    def __post_init__(self):
        if not 0 < self.gamma < 1 or not 0 < self.expectile < 1 or not 0 < self.future_gamma < 1:
            raise ValueError(f"gamma, expectile and future_gamma must lie in (0, 1), got {self.gamma}, "
                             f"{self.expectile}, {self.future_gamma}")
        if self.goal_self < 0 or self.goal_future < 0 or self.goal_self + self.goal_future > 1:
            raise ValueError(f"goal_self and goal_future must be >= 0 and sum to at most 1, got {self.goal_self} "
                             f"and {self.goal_future}")


def expectile_loss(pred: torch.Tensor, target: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric squared error: weight ``expectile`` where the target is below the prediction, else ``1 - it``."""
    u = target - pred
    w = torch.where(u < 0, expectile, 1 - expectile)
    return (w * u.pow(2)).mean()


@dataclass
class HindsightSampler:
    """Batches of ``(source, next, goal, reached)`` frame indices for the critic's TD targets.

    ``offsets (E+1,)`` bound the trajectories; ``episodes`` are those to draw from; one step of the critic is
    ``stride`` k frames (a level-2 step at level 2). A source is any frame with a frame k later in its trajectory. Goals (``HindsightTD``): the source
    itself (``reached``), the frame ``k * m`` later with ``m >= 1`` geometric (clipped to the episode), or any
    frame of the drawn episodes.
    """

    offsets: np.ndarray
    episodes: np.ndarray
    stride: int
    cfg: HindsightTD

    def __post_init__(self):
        eps = np.sort(np.asarray(self.episodes))
        lo, hi = self.offsets[eps], self.offsets[eps + 1]
        count = np.maximum(hi - lo - self.stride, 0)
        if count.sum() == 0:
            raise ValueError(f"no trajectory is longer than the critic's stride ({self.stride} frames)")
        self.sources = np.concatenate([np.arange(a, a + c) for a, c in zip(lo, count)])
        self.episode_end = np.concatenate([np.full(c, h - 1) for h, c in zip(hi, count)])  # last frame of each
        self.frames = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)])

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        c, k = self.cfg, self.stride
        pick = rng.integers(0, self.sources.size, n)
        src, end = self.sources[pick], self.episode_end[pick]
        kind = rng.random(n)
        m = rng.geometric(1 - c.future_gamma, n)
        future = np.minimum(src + k * m, src + k * ((end - src) // k))
        goal = np.where(kind < c.goal_self, src,
                        np.where(kind < c.goal_self + c.goal_future, future, self.frames[rng.integers(0, self.frames.size, n)]))
        return {"source": src, "next": src + k, "goal": goal, "reached": goal == src}


def td_update(critic: nn.Module, target: nn.Module, opt: torch.optim.Optimizer, states: torch.Tensor,
              batch: dict[str, np.ndarray], cfg: HindsightTD) -> float:
    """One step of the critic: expectile regression of ``TC(s, g)`` on ``0`` where the goal is reached, else on
    ``1 + gamma * TC_target(s', g)``; then the target network follows (Polyak). ``states (N, D)``: every frame's
    state; ``batch``: frame indices from ``HindsightSampler.sample``. Returns the loss."""
    s, nxt, g = (states[torch.from_numpy(batch[key]).to(states.device)] for key in ("source", "next", "goal"))
    reached = torch.from_numpy(batch["reached"]).to(states.device)
    with torch.no_grad():
        td = torch.where(reached, 0.0, 1.0 + cfg.gamma * target(nxt, g))
    loss = expectile_loss(critic(s, g), td, cfg.expectile)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        for p, q in zip(target.parameters(), critic.parameters()):
            p.lerp_(q, cfg.target_tau)
    return float(loss.detach())


def fit_hindsight_critic(critic: nn.Module, states: torch.Tensor, offsets: np.ndarray, stride: int, cfg: HindsightTD,
                         steps: int, batch_size: int, lr: float, seed: int = 0, progress=None) -> list[float]:
    """Train ``critic(s, g)`` in place by ``td_update`` on trajectories ``states (N, D)`` cut by ``offsets (R+1,)``
    (every trajectory is used); batches depend only on ``(seed, step)``. Returns the loss of every step."""
    sampler = HindsightSampler(offsets, np.arange(len(offsets) - 1), stride, cfg)
    target = copy.deepcopy(critic).requires_grad_(False)
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    losses = []
    critic.train()
    for step in range(steps):
        losses.append(td_update(critic, target, opt, states, sampler.sample(np.random.default_rng([seed, step, 29]),
                                                                            batch_size), cfg))
        if progress is not None:
            progress(1)
    critic.eval()
    return losses


__all__ = ["HindsightSampler", "HindsightTD", "expectile_loss", "fit_hindsight_critic", "td_update"]
