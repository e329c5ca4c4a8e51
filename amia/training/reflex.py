"""Compile the Mode-1 policy into the reflex (``amia.models.reflex``), by imitation on the reflex's own visits.

Round 0: the run's policy acts (perception + policy, ``amia.models.policy``) on fresh training episodes; every
visited frame is stored (pooled) with the goal's state and the policy's action there. Each later round: the
reflex fitted so far acts, and the policy labels the frames *it* visits (the DAgger form of imitation that
``amia distill`` also uses), so the reflex learns to recover from its own mistakes. After every round the reflex is
refitted on all labels so far. The policy labels without the surprise watch (its exploratory steps are not a
function of the frame); the reflex acts with its stuck watch (``amia.agent.reflex``), as it will when evaluated, so
that the labels cover the states it will visit. Training episodes use
their own start/goal seeds (``seed``, ``seed + 1``, ...), never an evaluation seed. After every round the labels and
the reflex go to ``reflex_state.safetensors``: rerunning the command resumes from the last finished round and ends
with the same reflex.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from amia.agent.episodes import run_episodes
from amia.agent.reflex import ReflexActor
from amia.envs import SUCCESS_RADIUS, evaluation_set, start_episodes
from amia.infra.checkpoint import atomic_write_text, read_checkpoint, save_checkpoint
from amia.infra.provenance import git_revision
from amia.infra.run_dir import REFLEX, RunError, load_model, load_parts, read_config
from amia.infra.validate import at_least, check, positive
from amia.models.policy import Policy
from amia.models.reflex import Reflex, ReflexConfig

SUMMARY_FILE = "reflex.json"
STATE_FILE = "reflex_state.safetensors"  # labels and reflex after each finished round: the resume point


@dataclass
class ReflexTrainConfig:
    """``rounds`` of ``episodes`` training episodes of ``steps`` steps (0: the world's budget); after each, ``fit_steps``
    Adam steps (batch ``batch_size``, rate ``lr``) on every label so far. ``reflex``: the network's size. The defaults
    were chosen on TwoRooms' tuning seed 5: 4 rounds of 3,000 steps of a 128-wide reflex reached 0.97 there, these
    0.99 (docs/findings.md, 4.6)."""

    rounds: int = 6
    episodes: int = 200
    steps: int = 0
    seed: int = 100
    fit_steps: int = 5000
    batch_size: int = 512
    lr: float = 1e-3
    reflex: ReflexConfig = field(default_factory=ReflexConfig)

    def __post_init__(self):
        at_least(self, 1, "rounds", "episodes", "fit_steps", "batch_size")
        at_least(self, 0, "steps")
        positive(self, "lr")
        check(self.seed >= 1, "seed", self.seed, "an integer >= 1 (seed 0's start/goal pairs are the evaluation "
              "protocol's)")


class Imitation:
    """An actor for one round: ``student`` acts (the policy itself when ``None``); the policy labels every frame
    (pooled by ``reflex``), with the goal's state. Follows ``amia.agent.actor.Actor``."""

    def __init__(self, encoder, policy: Policy, reflex: Reflex, student: ReflexActor | None):
        self.encoder, self.policy, self.reflex, self.student = encoder, policy, reflex, student
        self.periods, self.warmup_steps = {"plan": 1}, 0
        self.labels: dict[str, list[torch.Tensor]] = {"pixels": [], "context": [], "action": []}

    @torch.inference_mode()
    def reset(self, goal_obs: np.ndarray, seed: int = 0, record: int = 0, **task_inputs) -> None:
        self.goal = self.encoder(torch.from_numpy(goal_obs))
        if self.student is not None:
            self.student.reset(goal_obs)

    @torch.inference_mode()
    def act(self, obs: np.ndarray) -> np.ndarray:
        frames = torch.from_numpy(obs)
        action = self.policy(self.encoder(frames), self.goal)
        self.labels["pixels"].append(self.reflex.pooled(frames).half())
        self.labels["context"].append(self.goal)
        self.labels["action"].append(action)
        return action.numpy() if self.student is None else self.student.act(obs)

    def report(self) -> dict:
        return {"surprises": 0, "explored_steps": 0, "trace": {"plans": []}}

    def describe(self) -> dict:
        return {"planner": "policy" if self.student is None else "reflex", "surprise_watch": False}


def fit(reflex: Reflex, data: dict[str, torch.Tensor], cfg: ReflexTrainConfig, seed: int, progress=None) -> list[float]:
    """``cfg.fit_steps`` Adam steps of the mean squared error between the reflex's and the policy's actions."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(reflex.parameters(), lr=cfg.lr)
    n, losses = data["action"].shape[0], []
    for _ in range(cfg.fit_steps):
        i = torch.randint(n, (min(cfg.batch_size, n),), generator=gen)
        loss = F.mse_loss(reflex.from_pooled(data["pixels"][i].float(), data["context"][i]), data["action"][i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress is not None:
            progress(1)
    return losses


def train_reflex(run_dir: str | Path, cfg: ReflexTrainConfig | None = None, progress: bool = True,
                 force: bool = False) -> dict:
    """Fit the run's reflex to its policy (module docstring); writes ``reflex.safetensors`` and ``reflex.json`` into
    the run and returns the summary: per round the behaviour's success on its training episodes, the labels so far
    and the last fitting loss. An existing reflex is replaced only with ``force``."""
    cfg, run_dir = cfg or ReflexTrainConfig(), Path(run_dir)
    if force:
        (run_dir / STATE_FILE).unlink(missing_ok=True)
    elif (run_dir / REFLEX).exists():
        raise RunError(f"{run_dir / REFLEX} exists; pass --force to replace it")
    model, saved = load_model(run_dir, torch.device("cpu"))
    policy = load_parts(run_dir, model.cfg.encoder.dim)["policy"]
    if policy is None:
        raise RunError(f"{run_dir}: the reflex imitates the run's policy; run `amia distill --run {run_dir}` first")
    env_id = read_config(run_dir)["env_id"]
    model.eval()
    torch.manual_seed(cfg.seed)
    probe_world, probe_goal = start_episodes(env_id, evaluation_set(env_id, 1, cfg.seed), cfg.seed)
    steps = cfg.steps or probe_world.spec.max_steps
    reflex = Reflex(cfg.reflex, tuple(probe_goal.shape[1:]), model.cfg.encoder.dim, policy.action_dim, policy.bound)
    data: dict[str, list[torch.Tensor]] = {"pixels": [], "context": [], "action": []}
    rounds, t0 = [], time.time()
    first = _resume(run_dir / STATE_FILE, cfg, reflex, data, rounds)
    if first and progress:
        print(f"resuming {run_dir / STATE_FILE}: {first} of {cfg.rounds} rounds done", flush=True)
    for r in range(first, cfg.rounds):
        student = ReflexActor(reflex, model.encoder) if r else None
        actor = Imitation(model.encoder, policy, reflex, student)
        pairs = evaluation_set(env_id, cfg.episodes, cfg.seed + r)
        world, goal_obs = start_episodes(env_id, pairs, cfg.seed + r)
        with tqdm(total=steps, desc=f"reflex round {r + 1}/{cfg.rounds}", unit="step", disable=not progress) as bar:
            out = run_episodes(actor, world, goal_obs, steps, seed=cfg.seed + r, progress=bar.update)
        success = float(np.mean(np.linalg.norm(out["positions"][:, -1] - pairs["goal"][:, :2], axis=1) < SUCCESS_RADIUS))
        for k, v in actor.labels.items():
            data[k].append(torch.cat(v))
        merged = {k: torch.cat(v) for k, v in data.items()}
        with tqdm(total=cfg.fit_steps, desc="fit reflex", unit="step", disable=not progress) as bar:
            losses = fit(reflex, merged, cfg, cfg.seed + r, bar.update)
        rounds.append({"round": r, "acting": "policy" if r == 0 else "reflex", "success": success,
                       "labels": int(merged["action"].shape[0]), "loss": float(np.mean(losses[-100:]))})
        _save_state(run_dir / STATE_FILE, cfg, reflex, merged, rounds)
    reflex.eval()
    meta = {"reflex": asdict(cfg.reflex), "frame_shape": list(reflex.frame_shape), "context_dim": reflex.context_dim,
            "action_dim": reflex.action_dim, "bound": reflex.bound, "train": asdict(cfg)}
    save_checkpoint(run_dir / REFLEX, reflex, None, meta)
    summary = {"rounds": rounds, "seconds": round(time.time() - t0, 1), "config": asdict(cfg), "git_rev": git_revision()}
    atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
    return summary


def _resume_key(cfg: ReflexTrainConfig) -> str:
    return json.dumps({k: v for k, v in asdict(cfg).items() if k != "rounds"}, sort_keys=True)


def _save_state(path: Path, cfg: ReflexTrainConfig, reflex: Reflex, data: dict[str, torch.Tensor],
                rounds: list) -> None:
    holder = torch.nn.Module()
    holder.reflex = reflex
    for k, v in data.items():
        holder.register_buffer(f"labels_{k}", v)
    save_checkpoint(path, holder, None, {"key": _resume_key(cfg), "rounds": rounds})


def _resume(path: Path, cfg: ReflexTrainConfig, reflex: Reflex, data: dict[str, list[torch.Tensor]],
            rounds: list) -> int:
    """Load the state of a previous job with the same settings; the number of rounds it finished (0: none)."""
    if not path.exists():
        return 0
    tensors, meta, _ = read_checkpoint(path)
    if meta.get("key") != _resume_key(cfg):
        raise RunError(f"{path} was written with other reflex settings; pass --force to start again")
    reflex.load_state_dict({k[len("model/reflex."):]: v for k, v in tensors.items() if k.startswith("model/reflex.")})
    for k in data:
        data[k].append(tensors[f"model/labels_{k}"])
    rounds.extend(meta["rounds"][: cfg.rounds])
    return min(len(meta["rounds"]), cfg.rounds)


__all__ = ["Imitation", "ReflexTrainConfig", "fit", "train_reflex"]
