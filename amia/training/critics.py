"""Goal-conditioned critics by temporal differences over hindsight goals (Sec. 3.3; the recipe of IQL / HIQL),
at both levels of the H-JEPA: level 2's from the reward-free dataset, level 1's from the short-term memory.

A critic ``TC(s, g) >= 0`` (``amia.models.critic``) of a goal-reaching task predicts the intrinsic cost still to
come from ``s``: the task costs 1 per step (of ``stride`` frames) until the goal's state is reached, discounted
by ``gamma``, so ``TC`` is the discounted number of steps to the goal. It is learned from stored trajectories
alone, whatever behaviour made them:

- **hindsight goals**: each source frame is paired with a goal that is the frame itself (``goal_self``; target
  0), a later frame of its trajectory (``goal_future``; ``m >= 1`` steps later, ``m`` geometric with mean
  ``1 / (1 - future_gamma)``), or any stored frame (the rest), which teaches costs between trajectories;
- **temporal differences**: the target is ``1 + gamma * TC_target(s', g)``, ``s'`` the frame one step later,
  ``TC_target`` a Polyak-averaged copy (``target_tau``): costs propagate along stored paths and join paths
  that no single trajectory shows (stitching);
- **expectile regression** (``expectile`` > 0.5): targets below the prediction weigh more, so the critic learns
  the cost along the best of the stored paths rather than their average (a random walk's detours).

Why level 2 needs one: its goal cost is a distance in representation space, which in a maze points through
walls; the critic knows the way round along the doors. Files of level 2's critic (in the run directory):
``level2_critic.safetensors`` (critic, target network, optimizer, step; an interrupted run resumes) and
``level2_critic.json`` (config, loss, seconds, and a check against the maze's true shortest paths).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from amia.data.dataset import split_episodes
from amia.data.encode import EncodedTrajectories, encode_dataset
from amia.infra.config import to_dict
from amia.infra.host import set_threads
from amia.infra.provenance import git_revision
from amia.infra.run_dir import (
    CRITIC2,
    CRITIC2_SUMMARY,
    RunError,
    data_file,
    finished_level1,
    load_level2,
    weights_fingerprint,
)
from amia.infra.validate import at_least, check, positive, within
from amia.models.critic import Critic
from amia.training.fit import minimise
from amia.training.loop import TrainingLoop, write_summary


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
        for name in ("gamma", "expectile", "future_gamma"):
            within(self, name, 0, 1, open_low=True, open_high=True)
        within(self, "goal_self", 0, 1)
        within(self, "goal_future", 0, 1)
        check(self.goal_self + self.goal_future <= 1, "goal_future", self.goal_future,
              f"a number with goal_self + goal_future <= 1 (goal_self is {self.goal_self})")
        within(self, "target_tau", 0, 1, open_low=True)


def expectile_loss(pred: torch.Tensor, target: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric squared error: weight ``expectile`` where the target is below the prediction, else ``1 - it``."""
    u = target - pred
    w = torch.where(u < 0, expectile, 1 - expectile)
    return (w * u.pow(2)).mean()


@dataclass
class HindsightSampler:
    """Batches of ``(source, next, goal, reached)`` frame indices for the critic's TD targets.

    ``offsets (E+1,)`` bound the trajectories; ``episodes`` are those to draw from; one step of the critic is
    ``stride`` k frames (a level-2 step at level 2). A source is any frame with a frame k later in its trajectory.
    Goals (``HindsightTD``): the source itself (``reached``), the frame ``k * m`` later with ``m >= 1`` geometric
    (clipped to the episode), or any
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


def td_loss(critic: nn.Module, target: nn.Module, states: torch.Tensor, batch: dict[str, np.ndarray],
            cfg: HindsightTD) -> torch.Tensor:
    """Expectile regression of ``TC(s, g)`` on ``0`` where the goal is reached, else on
    ``1 + gamma * TC_target(s', g)``. ``states (N, D)``: every frame's state; ``batch``: frame indices from
    ``HindsightSampler.sample``."""
    s, nxt, g = (states[torch.from_numpy(batch[key]).to(states.device)] for key in ("source", "next", "goal"))
    reached = torch.from_numpy(batch["reached"]).to(states.device)
    with torch.no_grad():
        td = torch.where(reached, 0.0, 1.0 + cfg.gamma * target(nxt, g))
    return expectile_loss(critic(s, g), td, cfg.expectile)


def follower(target: nn.Module, critic: nn.Module, tau: float):
    """The target network's update after each step: ``target <- target + tau (critic - target)`` (Polyak)."""

    @torch.no_grad()
    def follow() -> None:
        for p, q in zip(target.parameters(), critic.parameters()):
            p.lerp_(q, tau)

    return follow


def fit_hindsight_critic(critic: nn.Module, states: torch.Tensor, offsets: np.ndarray, stride: int, cfg: HindsightTD,
                         steps: int, batch_size: int, lr: float, seed: int = 0, progress=None) -> list[float]:
    """Train ``critic(s, g)`` in place (``amia.training.fit.minimise``) on trajectories ``states (N, D)`` cut by
    ``offsets (R+1,)`` (every trajectory is used); batches depend only on ``(seed, step)``. Returns the losses."""
    sampler = HindsightSampler(offsets, np.arange(len(offsets) - 1), stride, cfg)
    target = copy.deepcopy(critic).requires_grad_(False)
    step = iter(range(steps))

    def batch_loss(g: torch.Generator) -> torch.Tensor:
        rng = np.random.default_rng([seed, next(step), 29])
        return td_loss(critic, target, states, sampler.sample(rng, batch_size), cfg)

    return minimise(critic, batch_loss, steps, lr, seed, progress, after_step=follower(target, critic, cfg.target_tau))


@dataclass
class Level2CriticConfig(HindsightTD):
    """The level-2 critic (``critic2.KEY=value`` on ``amia train --levels 2``): the learning rule's settings
    (``amia.training.critics.HindsightTD``: discount per level-2 step, expectile, hindsight goal mix, target rate),
    the network's size and the schedule."""

    hidden: int = 256
    layers: int = 3
    steps: int = 20000
    batch_size: int = 1024
    lr: float = 3e-4
    log_every: int = 200
    checkpoint_every: int = 2000
    seed: int = 0
    threads: int = 0

    def __post_init__(self):
        super().__post_init__()
        at_least(self, 1, "hidden", "layers", "steps", "batch_size", "log_every", "checkpoint_every")
        at_least(self, 0, "seed", "threads")
        positive(self, "lr")


@torch.no_grad()
def level2_states(level2, level1_states: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """``Enc2`` of every encoded level-1 state ``(N, D1) -> (N, D2)`` (level 2's state at that frame, ``pool="first"``)."""
    return torch.cat([level2.encode_state(level1_states[i:i + chunk]) for i in range(0, len(level1_states), chunk)])


def train_level2_critic(run_dir: str | Path, cfg: Level2CriticConfig | None = None, device: str = "cpu",
                        progress: bool = True, cache: EncodedTrajectories | None = None,
                        stop_after: int | None = None) -> dict:
    """Train (or resume, or read back) the level-2 critic of a run with both levels; returns ``level2_critic.json``.

    ``cache``: the run's encoded dataset if already at hand (else it is encoded once). ``stop_after`` stops as an
    interruption would (used by tests).
    """
    cfg, run_dir, dev = cfg or Level2CriticConfig(), Path(run_dir), torch.device(device)
    set_threads(cfg.threads)
    model1, saved = finished_level1(run_dir, device)
    level2, _ = load_level2(run_dir, device, level1=model1)
    if level2.cfg.pool != "first":
        raise RunError("the level-2 critic needs level-2 states of single frames (level2.pool=first), "
                       f"got pool {level2.cfg.pool!r}")
    torch.manual_seed(cfg.seed)
    critic = Critic(level2.dim, level2.dim, cfg.hidden, cfg.layers).to(dev)
    target = copy.deepcopy(critic).requires_grad_(False)
    opt = torch.optim.Adam(critic.parameters(), lr=cfg.lr)
    fingerprint = weights_fingerprint(level2)
    loop = TrainingLoop("level2_critic", run_dir / CRITIC2, nn.ModuleDict({"critic": critic, "target": target}), opt,
                        cfg.steps, {"config": to_dict(cfg), "level2": fingerprint, "dim": level2.dim}, run_dir,
                        cfg.log_every, cfg.checkpoint_every, progress)
    loop.resume()
    if loop.finished and (run_dir / CRITIC2_SUMMARY).exists():
        return json.loads((run_dir / CRITIC2_SUMMARY).read_text())
    cache = cache or encode_dataset(model1, data_file(run_dir, saved), dev, progress=progress)
    s2 = level2_states(level2, cache.states.to(dev))
    train_eps, val_eps = split_episodes(cache.episodes, saved["train"]["val_fraction"])
    sampler = HindsightSampler(cache.offsets, train_eps, level2.cfg.stride, cfg)

    def loss(step: int) -> dict:
        batch = sampler.sample(np.random.default_rng([cfg.seed, step, 29]), cfg.batch_size)
        return {"loss": td_loss(critic, target, s2, batch, cfg)}

    halted = loop.run(loss, after_step=follower(target, critic, cfg.target_tau), stop_after=stop_after)
    if halted is not None:
        return halted
    critic.eval()
    check = critic_check(critic, s2, cache, val_eps, saved.get("env_id", ""), seed=cfg.seed)
    return write_summary(run_dir / CRITIC2_SUMMARY, {
        "run": str(run_dir), "steps": loop.step, "seconds": round(loop.seconds, 1),
        "final_loss": loop.last.get("loss"), "config": to_dict(cfg), "level2": fingerprint,
        "git_rev": git_revision(), "check": check})


@torch.no_grad()
def critic_check(critic: Critic, s2: torch.Tensor, cache, episodes: np.ndarray, env_id: str,
                 pairs: int = 2000, seed: int = 0) -> dict:
    """How well ``TC`` orders held-out start/goal pairs by their true shortest path (maze worlds only).

    Spearman rank correlation between the critic and the true geodesic distance in pixels over ``pairs``
    random frame pairs of ``episodes``; also against the straight-line distance (what the goal cost sees).
    """
    from amia.envs.maze import MazeSpec, geodesic_distance
    if env_id != "amia/Maze-v0":
        return {}
    rng = np.random.default_rng(seed)
    frames = np.concatenate([np.arange(cache.offsets[e], cache.offsets[e + 1]) for e in episodes])
    a, b = frames[rng.integers(0, frames.size, pairs)], frames[rng.integers(0, frames.size, pairs)]
    tc = critic(s2[torch.from_numpy(a)], s2[torch.from_numpy(b)]).cpu().numpy()
    pa, pb = cache.position[a].numpy(), cache.position[b].numpy()
    geo = geodesic_distance(MazeSpec(), pa, pb)
    straight = np.linalg.norm(pa - pb, axis=-1)

    def spearman(x: np.ndarray, y: np.ndarray) -> float:
        rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
        return float(np.corrcoef(rx, ry)[0, 1])

    return {"pairs": pairs, "spearman_critic_vs_geodesic": round(spearman(tc, geo), 4),
            "spearman_straight_vs_geodesic": round(spearman(straight, geo), 4)}




__all__ = ["HindsightSampler", "HindsightTD", "Level2CriticConfig", "critic_check", "expectile_loss",
           "fit_hindsight_critic", "follower", "level2_states", "td_loss", "train_level2_critic"]
