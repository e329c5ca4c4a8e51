"""The world model learns from the agent's own experience (Sec. 3.1.1: predict, then let the next real observation
improve the world model).

A planner optimises its actions against the predictor, so it finds the predictor's errors. On Wall-v0 the plans
that stall at the wall are predicted to pass through it: the dataset never showed those action sequences there.
Each round acts in Mode-2 on training episodes (their own start/goal seeds, never the evaluation seed), records
the frames the agent saw and the actions it took, and refits the predictor on windows of all that experience
mixed with windows of the run's dataset (``own_fraction`` of every batch), against the frozen encoder's states.
The encoder, and with it every part of the run that reads states (probe, policy, critic, level 2), stays as it is.
The next round acts with the refined model, whose plans find the next errors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from amia.actor.surprise import SurpriseConfig
from amia.checkpoint import atomic_write_text, read_checkpoint, save_checkpoint
from amia.envs import make_world
from amia.evaluate import EvalConfig, check_compatible, eval_task, make_agent, task_episodes
from amia.jepa import JEPA
from amia.provenance import git_revision
from amia.train import load_model, load_run_config

STATE_FILE, SUMMARY_FILE = "refine_state.safetensors", "refine.json"


def _acting() -> EvalConfig:
    return EvalConfig(planner="mppi", surprise=SurpriseConfig(enabled=True, explore="back_off"))


@dataclass
class RefineConfig:
    """``rounds`` of ``episodes`` training episodes of ``steps`` steps, acting as ``act`` says (the protocol's
    settings: planner, surprise watch...; its ``episodes`` and ``seed`` are ignored), round ``r`` with start/goal
    seed ``seed + r``; then ``fit_steps`` Adam steps (learning rate ``lr``, cosine to 0) on batches of
    ``batch_size`` windows of ``window`` steps, ``own_fraction`` of them from the agent's experience.
    ``held_out``: every that-many-th episode of experience is kept out of training to measure the refit."""

    rounds: int = 2
    episodes: int = 128
    steps: int = 120
    seed: int = 1
    fit_steps: int = 3000
    batch_size: int = 128
    window: int = 16
    lr: float = 3e-4
    own_fraction: float = 0.5
    held_out: int = 8
    act: EvalConfig = field(default_factory=_acting)

    def __post_init__(self):
        for name in ("rounds", "episodes", "fit_steps", "batch_size", "window", "held_out"):
            if getattr(self, name) < 1:
                raise ValueError(f"refine {name} must be >= 1, got {getattr(self, name)}")
        if self.steps < self.window:
            raise ValueError(f"refine steps ({self.steps}) must be >= window ({self.window}): windows are cut from episodes")
        if self.seed == 0:
            raise ValueError("refine seed must not be 0: seed 0's start/goal pairs are the evaluation protocol's")
        if not 0 <= self.own_fraction <= 1:
            raise ValueError(f"refine own_fraction must lie in [0, 1], got {self.own_fraction}")
        if self.act.hierarchical or self.act.mode != 2:
            raise ValueError("refine acts in flat Mode-2 (act.hierarchical=false, act.mode=2)")


class RecordingWorld:
    """A batched world that keeps every frame it shows and every action it is given (the agent's experience)."""

    def __init__(self, world):
        self.world = world
        self.frames, self.actions = [world.render()], []

    def __getattr__(self, name):
        return getattr(self.world, name)

    def step(self, actions: np.ndarray):
        obs, info = self.world.step(actions)
        self.actions.append(np.asarray(actions, dtype=np.float32).copy())
        self.frames.append(obs.copy())
        return obs, info

    def experience(self) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``uint8 (B, T+1, C, H, W)`` and actions ``(B, T, A)``."""
        return np.stack(self.frames, 1), np.stack(self.actions, 1)


def act(model: JEPA, env_id: str, cfg: EvalConfig, episodes: int, steps: int, seed: int,
        device: torch.device, progress: bool = True) -> dict[str, np.ndarray]:
    """Mode-2 on ``episodes`` start/goal pairs of seed ``seed`` for ``steps`` steps: frames, actions, success."""
    cfg = dataclasses.replace(cfg, episodes=episodes, seed=seed)
    agent, task = make_agent(model, env_id, cfg, device), eval_task(cfg)
    pairs = task_episodes(env_id, task, episodes, seed)
    world, goal_world = make_world(env_id, episodes), make_world(env_id, episodes)
    world.set_state(pairs["start"].astype(np.float64))
    goal_obs, _ = goal_world.set_state(pairs["goal"].astype(np.float64))
    rec = RecordingWorld(world)
    with tqdm(total=steps, desc=f"act (seed {seed})", unit="step", disable=not progress) as bar:
        out = agent.run(rec, goal_obs, task, steps, cfg.replan_every, seed=seed, progress=bar.update)
    frames, actions = rec.experience()
    final = np.linalg.norm(out["positions"][:, -1] - pairs["goal"][:, :2], axis=1)
    return {"frames": frames, "actions": actions, "final_distance": final}


@torch.no_grad()
def encode_frames(model: JEPA, frames: np.ndarray, device: torch.device, chunk: int = 2048) -> torch.Tensor:
    """The frozen encoder's states of ``uint8 frames (..., C, H, W)``, in chunks: ``(..., D)`` on the CPU."""
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = [model.encoder(torch.from_numpy(flat[i:i + chunk]).to(device)).cpu() for i in range(0, len(flat), chunk)]
    return torch.cat(out).reshape(*frames.shape[:-3], -1)


def dataset_windows(model: JEPA, data_path: str | Path, device: torch.device, progress: bool = True):
    """Every frame of a trajectory file through the frozen encoder: ``states (F, D)``, ``actions (F, A)``, offsets."""
    with h5py.File(data_path, "r") as f:
        offsets, obs = f["episode_offsets"][:], f["obs"]
        actions = torch.from_numpy(f["action"][:]).float()
        chunk, states = 4096, []
        for i in tqdm(range(0, obs.shape[0], chunk), desc="encode dataset", unit="chunk", disable=not progress):
            states.append(encode_frames(model, obs[i:i + chunk], device))
    return torch.cat(states), actions, offsets


def window_error(predictor, states: torch.Tensor, actions: torch.Tensor) -> float:
    """Mean squared error of the predictor's roll-out over windows ``states (B, W+1, D)``, ``actions (B, W, A)``."""
    with torch.no_grad():
        return float((predictor.rollout(states[:, 0], actions) - states[:, 1:]).pow(2).mean())


class WindowSampler:
    """Windows of ``window`` steps from the agent's episodes ``(N, T+1, D)`` and from the dataset's trajectories."""

    def __init__(self, own_states, own_actions, data_states, data_actions, offsets, window: int):
        self.own_states, self.own_actions, self.window = own_states, own_actions, window
        self.data_states, self.data_actions = data_states, data_actions
        self.data_starts = np.concatenate([np.arange(a, b - window) for a, b in zip(offsets[:-1], offsets[1:])
                                           if b - a > window])

    def own(self, n: int, g: torch.Generator):
        e = torch.randint(self.own_states.shape[0], (n,), generator=g)
        t = torch.randint(self.own_actions.shape[1] - self.window + 1, (n,), generator=g)
        idx = t[:, None] + torch.arange(self.window + 1)
        return self.own_states[e[:, None], idx], self.own_actions[e[:, None], idx[:, :-1]]

    def data(self, n: int, g: torch.Generator):
        b = torch.from_numpy(self.data_starts)[torch.randint(len(self.data_starts), (n,), generator=g)]
        idx = b[:, None] + torch.arange(self.window + 1)
        return self.data_states[idx], self.data_actions[idx[:, :-1]]


def fit_predictor(predictor, sampler: WindowSampler, cfg: RefineConfig, seed: int, device: torch.device,
                  progress: bool = True) -> list[float]:
    """Refit ``predictor`` in place on mixed windows; batches depend only on ``seed``. Returns every step's loss."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(predictor.parameters(), lr=cfg.lr)
    n_own = round(cfg.batch_size * cfg.own_fraction)
    losses = []
    predictor.train().requires_grad_(True)
    for step in tqdm(range(cfg.fit_steps), desc="refit predictor", unit="step", disable=not progress):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.fit_steps))
        parts = [sampler.own(n_own, g), sampler.data(cfg.batch_size - n_own, g)]
        s = torch.cat([p[0] for p in parts]).to(device)
        a = torch.cat([p[1] for p in parts]).to(device)
        loss = (predictor.rollout(s[:, 0], a) - s[:, 1:]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    predictor.eval().requires_grad_(False)
    return losses


def _write_run(out: Path, run: Path, saved: dict, model: JEPA, meta: dict, data_path: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    saved = dict(saved, data=str(data_path.resolve()))
    atomic_write_text(out / "config.json", json.dumps(saved, indent=2))
    if (run / "metrics.json").exists():
        shutil.copy(run / "metrics.json", out / "metrics.json")
    save_checkpoint(out / "checkpoint.safetensors", model, None, meta)


def refine(run_dir: str | Path, out_dir: str | Path, cfg: RefineConfig | None = None, device: str = "cpu",
           progress: bool = True) -> dict:
    """Refine the world model of ``run_dir`` on the agent's experience; write the refined run to ``out_dir``
    (config, checkpoint, ``refine.json``). Every finished round is saved there; rerunning resumes, and a larger
    ``rounds`` adds rounds to a finished refinement. Returns the summary."""
    cfg = cfg or RefineConfig()
    run, out, device = Path(run_dir), Path(out_dir), torch.device(device)
    if run.resolve() == out.resolve():
        raise ValueError(f"refine writes a new run: --out must differ from --run ({run})")
    model, saved = load_model(run, str(device))  # names the missing checkpoint / config
    env_id = saved["env_id"]
    check_compatible(model, env_id)
    _, train_cfg = load_run_config(run)
    data_path = Path(saved.get("data") or run / "data.h5")
    if not data_path.exists():
        raise FileNotFoundError(f"{data_path}: the run's dataset is needed to refit the predictor (it keeps the "
                                f"refit close to the data it was trained on)")
    _, meta, _ = read_checkpoint(run / "checkpoint.safetensors")
    config = dataclasses.asdict(cfg)
    summary = {"from_run": str(run), "env_id": env_id, "config": config, "rounds": [], "git_rev": git_revision()}
    own_states = own_actions = None
    if (out / STATE_FILE).exists():
        tensors, state_meta, _ = read_checkpoint(out / STATE_FILE)
        same = {k: v for k, v in json.loads(json.dumps(config)).items() if k != "rounds"}
        if {k: v for k, v in state_meta["config"].items() if k != "rounds"} != same:
            raise ValueError(f"{out} holds a refinement with other settings (only rounds may grow); choose another "
                             f"--out or delete it")
        summary = dict(state_meta["summary"], config=config)
        own_states, own_actions = tensors["model/own_states"], tensors["model/own_actions"]
        model, _ = load_model(out, str(device))
    if len(summary["rounds"]) >= cfg.rounds:
        return summary
    model.eval().requires_grad_(False)
    data_states, data_actions, offsets = dataset_windows(model, data_path, device, progress)
    start = time.time()
    for r in range(len(summary["rounds"]), cfg.rounds):
        seed = cfg.seed + r
        exp = act(model, env_id, cfg.act, cfg.episodes, cfg.steps, seed, device, progress)
        states = encode_frames(model, exp["frames"], device)
        actions = torch.from_numpy(exp["actions"])
        own_states = states if own_states is None else torch.cat([own_states, states])
        own_actions = actions if own_actions is None else torch.cat([own_actions, actions])
        held = torch.arange(own_states.shape[0]) % cfg.held_out == 0
        sampler = WindowSampler(own_states[~held], own_actions[~held], data_states, data_actions, offsets, cfg.window)
        g = torch.Generator().manual_seed(10_000 + r)
        val_own = WindowSampler(own_states[held], own_actions[held], data_states, data_actions, offsets, cfg.window)
        checks = {"own": val_own.own(1024, g), "data": val_own.data(1024, g)}
        pred = model.predictor
        before = {k: window_error(pred, s.to(device), a.to(device)) for k, (s, a) in checks.items()}
        losses = fit_predictor(pred, sampler, cfg, seed=r, device=device, progress=progress)
        after = {k: window_error(pred, s.to(device), a.to(device)) for k, (s, a) in checks.items()}
        summary["rounds"].append({
            "seed": seed, "episodes": cfg.episodes, "success_rate": float(np.mean(exp["final_distance"] < 4.5)),
            "own_episodes": int(own_states.shape[0]), "held_out_episodes": int(held.sum()),
            "own_error_before": before["own"], "own_error_after": after["own"],
            "data_error_before": before["data"], "data_error_after": after["data"],
            "final_loss": float(np.mean(losses[-100:])), "seconds": time.time() - start})
        _write_run(out, run, saved, model, dict(meta, refined={"from": str(run), "rounds": r + 1}), data_path)
        state = torch.nn.ParameterDict({"own_states": torch.nn.Parameter(own_states, requires_grad=False),
                                        "own_actions": torch.nn.Parameter(own_actions, requires_grad=False)})
        save_checkpoint(out / STATE_FILE, state, None, {"config": config, "summary": summary})
        atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2))
    return summary


__all__ = ["RecordingWorld", "RefineConfig", "WindowSampler", "act", "dataset_windows", "encode_frames",
           "fit_predictor", "refine", "window_error"]
