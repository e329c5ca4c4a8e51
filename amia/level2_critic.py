"""The level-2 critic of the H-JEPA (Sec. 3.3 at level 2 of Sec. 4.6-4.7): how far a goal is, in level-2 steps.

Level 2's intrinsic goal cost is a distance in representation space. In a maze that distance points through
walls: the state nearest the goal is often on the wrong side of one, many rooms away along the doors, so a
plan that minimises it stalls against the wall (measured: hierarchical Mode-2 with the distance alone reached
0.35 on Maze-v0). The paper's answer is the critic (Sec. 3.3): a trainable cost that predicts the intrinsic
cost still to come, so that a short plan sees far consequences. Here the intrinsic cost is the time spent
away from the goal (1 per level-2 step until the goal state is reached), and the critic

    TC(s2, g2) ~ discounted number of level-2 steps from s2 to g2 along the best path the data shows,

learned offline from the same reward-free trajectories as both levels, on their frozen level-2 states:
temporal-difference targets ``1 + gamma * TC_target(s2', g2)`` over one level-2 step (``k`` level-1 steps),
with hindsight goals (the state itself, a later state of the same episode, or any state of the dataset), and
an expectile loss that leans toward the lower targets, so that the critic learns the shortest of the paths
the random data stitch together rather than the random walk's average (the recipe of IQL / HIQL's
goal-conditioned value). ``TC`` is zero at the goal and grows along the doors; Mode-2 at level 2 adds it to
the distance (``amia.actor.hierarchical``).

Files (in the run directory): ``level2_critic.safetensors`` (weights, optimizer state, step; an interrupted
run resumes) and ``level2_critic.json`` (config, losses, seconds, and a check against the maze's true
shortest paths where the world is known).
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from amia.checkpoint import CheckpointError, atomic_write_text, load_optimizer, load_weights, read_checkpoint, save_checkpoint
from amia.config import from_dict, to_dict
from amia.data.blocks import encode_dataset
from amia.hindsight import HindsightSampler, HindsightTD, td_update
from amia.provenance import git_revision
from amia.train import Logger, RunError, StopFlag, config_diff, halt, split_episodes
from amia.world_model import mlp

CRITIC2_FILE, CRITIC2_SUMMARY = "level2_critic.safetensors", "level2_critic.json"


@dataclass
class Level2CriticConfig(HindsightTD):
    """The level-2 critic (``critic2.KEY=value`` on ``amia train --levels 2``): the learning rule's settings
    (``amia.hindsight.HindsightTD``: discount per level-2 step, expectile, hindsight goal mix, target rate),
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


class Level2Critic(nn.Module):
    """``TC(s2, g2) >= 0``: an MLP of the state and the goal's state (both ``(..., D2)``) with a softplus output."""

    def __init__(self, dim: int, hidden: int = 256, layers: int = 3):
        super().__init__()
        self.dim = dim
        self.net = mlp([2 * dim] + [hidden] * layers + [1])

    def forward(self, s2: torch.Tensor, goal2: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.net(torch.cat([s2, goal2.expand_as(s2)], dim=-1))).squeeze(-1)


class LevelOneView(nn.Module):
    """The level-2 critic read from level-1 states: ``TC(Enc2(s1), Enc2(goal s1))``, with the interface of the
    flat agent's critic (``amia.cost.Critic``: state and context ``(..., D1)``), so flat Mode-2 can score the end
    of its horizon with it (the comparison of ``benchmarks/hierarchical.py --flat-critic``)."""

    def __init__(self, critic: Level2Critic, level2):
        super().__init__()
        self.critic, self.level2 = critic, level2

    def forward(self, s1: torch.Tensor, goal1: torch.Tensor) -> torch.Tensor:
        return self.critic(self.level2.encode_state(s1), self.level2.encode_state(goal1))


@torch.no_grad()
def level2_states(level2, level1_states: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """``Enc2`` of every cached level-1 state ``(N, D1) -> (N, D2)`` (level 2's state at that frame, ``pool="first"``)."""
    return torch.cat([level2.encode_state(level1_states[i:i + chunk]) for i in range(0, len(level1_states), chunk)])


def train_level2_critic(run_dir: str | Path, cfg: Level2CriticConfig | None = None, device: str = "cpu",
                        progress: bool = True, cache=None, stop_after: int | None = None) -> dict:
    """Train (or resume, or read back) the level-2 critic of a run with both levels; returns ``level2_critic.json``.

    The checkpoint holds the critic, its target network and the optimizer, and batches depend only on
    ``(seed, step)``, so an interrupted and resumed run ends with the same weights. ``cache``: the run's
    ``Level1Cache`` if already encoded (else the run's data file is encoded once). ``stop_after`` stops as an
    interruption would (used by tests).
    """
    from amia.hjepa import _frozen_level1, weights_fingerprint, load_level2

    cfg = cfg or Level2CriticConfig()
    run_dir = Path(run_dir)
    ckpt, summary_path = run_dir / CRITIC2_FILE, run_dir / CRITIC2_SUMMARY
    torch.set_num_threads(cfg.threads or max(1, os.cpu_count() or 1))
    model1, saved, train_cfg = _frozen_level1(run_dir, device)
    level2, meta2 = load_level2(run_dir, device, level1=model1)
    if level2.cfg.pool != "first":
        raise RunError("the level-2 critic needs level-2 states of single frames (level2.pool=first), "
                       f"got pool {level2.cfg.pool!r}")
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    critic = Level2Critic(level2.dim, cfg.hidden, cfg.layers).to(dev)
    target = copy.deepcopy(critic).requires_grad_(False)
    both = nn.ModuleDict({"critic": critic, "target": target})  # what the checkpoint holds
    opt = torch.optim.Adam(critic.parameters(), lr=cfg.lr)
    step, elapsed = 0, 0.0
    fingerprint = weights_fingerprint(level2)  # a hash of the level-2 weights the critic is trained on
    if ckpt.exists():
        tensors, meta, groups = read_checkpoint(ckpt)
        diffs = config_diff(meta.get("config"), to_dict(cfg))
        if diffs:
            raise RunError(f"{ckpt} was trained with other settings ({'; '.join(diffs[:5])}); rerun with the same "
                           "settings to resume, or delete it to start again")
        if meta.get("level2") != fingerprint:
            raise RunError(f"{ckpt} was trained on another level 2; delete it to train the critic again")
        load_weights(both, tensors, ckpt)
        load_optimizer(opt, tensors, groups)
        step, elapsed = meta["step"], meta["seconds"]
        if step >= cfg.steps and summary_path.exists():
            return json.loads(summary_path.read_text())
    if cache is None:
        cache = encode_dataset(model1, saved.get("data") or str(run_dir / "data.h5"), dev, progress=progress)
    s2 = level2_states(level2, cache.states.to(dev))
    train_eps, val_eps = split_episodes(len(cache.offsets) - 1, train_cfg.val_fraction)
    sampler = HindsightSampler(cache.offsets, train_eps, level2.cfg.stride, cfg)

    def save() -> None:
        save_checkpoint(ckpt, both, opt, {"step": step, "seconds": elapsed, "config": to_dict(cfg),
                                            "level2": fingerprint, "dim": level2.dim})

    logger = Logger(run_dir, enabled=True)
    bar = tqdm(total=cfg.steps, initial=step, desc="train level-2 critic", unit="step", disable=not progress)
    losses: list[float] = []
    with StopFlag() as stop:
        while step < cfg.steps:
            t0 = time.perf_counter()
            batch = sampler.sample(np.random.default_rng([cfg.seed, step, 29]), cfg.batch_size)
            losses.append(td_update(critic, target, opt, s2, batch, cfg))
            step += 1
            elapsed += time.perf_counter() - t0
            if step % cfg.log_every == 0 or step == cfg.steps:
                logger.log(step, "level2_critic", {"loss": float(np.mean(losses[-cfg.log_every:]))})
                bar.set_postfix(loss=f"{np.mean(losses[-cfg.log_every:]):.4f}")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save()
            bar.update(1)
            stopping = stop.set or (stop_after is not None and step >= stop_after)
            if (halted := halt(stop, stopping, step, cfg.steps, save, ckpt, bar, logger)) is not None:
                return halted
    bar.close()
    logger.close()
    critic.eval()
    check = critic_check(critic, s2, cache, val_eps, saved.get("env_id", ""), seed=cfg.seed)
    summary = {"run": str(run_dir), "steps": step, "seconds": round(elapsed, 1),
               "final_loss": float(np.mean(losses[-cfg.log_every:])) if losses else None, "config": to_dict(cfg),
               "level2": fingerprint, "git_rev": git_revision(), "check": check}
    atomic_write_text(summary_path, json.dumps(summary, indent=2))
    return summary


@torch.no_grad()
def critic_check(critic: Level2Critic, s2: torch.Tensor, cache, episodes: np.ndarray, env_id: str,
                 pairs: int = 2000, seed: int = 0) -> dict:
    """How well ``TC`` orders held-out start/goal pairs by their true shortest path (maze worlds only).

    Spearman rank correlation between the critic and the true geodesic distance in pixels over ``pairs``
    random frame pairs of ``episodes``; also against the straight-line distance (what the goal cost sees).
    """
    from amia.envs.maze import geodesic_distance, MazeSpec
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


def load_level2_critic(run_dir: str | Path, device: str = "cpu", level2=None) -> Level2Critic | None:
    """The run's trained level-2 critic (eval mode, frozen), or ``None`` if it has none. ``CheckpointError`` if
    it is unfinished or (when ``level2`` is given) was trained on other level-2 weights."""
    from amia.hjepa import weights_fingerprint

    path = Path(run_dir) / CRITIC2_FILE
    if not path.exists():
        return None
    tensors, meta, _ = read_checkpoint(path)
    cfg = from_dict(Level2CriticConfig, meta["config"])
    if meta["step"] < cfg.steps:
        raise CheckpointError(f"{path}: the level-2 critic is at step {meta['step']} of {cfg.steps}; rerun "
                              f"`amia train --levels 2 --out {run_dir}` to finish it")
    if level2 is not None and meta["level2"] != weights_fingerprint(level2):
        raise CheckpointError(f"{path}: the level-2 critic was trained on other level-2 weights than the run's; "
                              f"delete it and rerun `amia train --levels 2 --out {run_dir}`")
    critic = Level2Critic(meta["dim"], cfg.hidden, cfg.layers)
    both = nn.ModuleDict({"critic": critic, "target": copy.deepcopy(critic)})
    load_weights(both, tensors, path)
    return critic.to(device).eval().requires_grad_(False)


__all__ = ["CRITIC2_FILE", "Level2Critic", "Level2CriticConfig", "LevelOneView", "level2_states", "load_level2_critic",
           "train_level2_critic"]
