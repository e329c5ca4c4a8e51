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
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from amia.agent.episodes import run_episodes
from amia.agent.load import AgentConfig, build_actor, check_compatible
from amia.agent.surprise import SurpriseConfig
from amia.data.encode import EncodedTrajectories, encode_dataset, encode_frames, window_starts
from amia.envs import SUCCESS_RADIUS, evaluation_set, make_world, start_episodes
from amia.infra.checkpoint import atomic_write_text, load_weights, meta_field, read_checkpoint, save_checkpoint
from amia.infra.provenance import git_revision
from amia.infra.run_dir import CHECKPOINT, CONFIG, METRICS, RunError, data_file, load_model
from amia.infra.validate import at_least, check, check_device, positive, within
from amia.models.jepa import JEPA
from amia.training.fit import minimise

STATE_FILE, SUMMARY_FILE = "refine_state.safetensors", "refine.json"


def _acting() -> AgentConfig:
    return AgentConfig(planner="mppi", surprise=SurpriseConfig(enabled=True, explore="back_off"))


@dataclass
class RefineConfig:
    """``rounds`` of ``episodes`` training episodes of ``steps`` steps, acting as ``act`` says (flat Mode-2),
    round ``r`` with start/goal seed ``seed + r``; then ``fit_steps`` Adam steps (``amia.training.fit``, from
    ``lr``) on batches of ``batch_size`` windows of ``window`` steps, ``own_fraction`` of them from the agent's
    experience. ``held_out``: every that-many-th episode of experience is kept out of training to measure the
    refit."""

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
    act: AgentConfig = field(default_factory=_acting)

    def __post_init__(self):
        at_least(self, 1, "rounds", "episodes", "fit_steps", "batch_size", "window", "held_out")
        check(self.seed >= 1, "seed", self.seed, "an integer >= 1 (seed 0's start/goal pairs are the evaluation "
              "protocol's)")
        check(self.steps >= self.window, "steps", self.steps,
              f"an integer >= window ({self.window}): windows are cut from episodes")
        positive(self, "lr")
        within(self, "own_fraction", 0, 1)
        self.act.require_flat_mode2("refine (act.*)")


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


def act(model: JEPA, env_id: str, cfg: AgentConfig, episodes: int, steps: int, seed: int,
        device: torch.device, progress: bool = True) -> dict[str, np.ndarray]:
    """Mode-2 on ``episodes`` start/goal pairs of seed ``seed`` for ``steps`` steps: frames, actions, distances."""
    actor = build_actor(model, cfg, make_world(env_id, 1).spec.max_step, device)
    pairs = evaluation_set(env_id, episodes, seed)
    world, goal_obs = start_episodes(env_id, pairs, seed)
    rec = RecordingWorld(world)
    with tqdm(total=steps, desc=f"act (seed {seed})", unit="step", disable=not progress) as bar:
        out = run_episodes(actor, rec, goal_obs, steps, seed=seed, progress=bar.update)
    frames, actions = rec.experience()
    return {"frames": frames, "actions": actions,
            "final_distance": np.linalg.norm(out["positions"][:, -1] - pairs["goal"][:, :2], axis=1)}


def window_error(predictor, windows: dict[str, torch.Tensor], device: torch.device) -> float:
    """Mean squared error of the predictor's roll-out over windows (``states (B, W+1, D)``, ``actions (B, W, A)``)."""
    s, a = windows["states"].to(device), windows["actions"].to(device)
    with torch.no_grad():
        return float((predictor.rollout(s[:, 0], a) - s[:, 1:]).pow(2).mean())


class MixedWindows:
    """Windows of ``window`` steps, ``own_fraction`` of each batch from the agent's experience, the rest from the
    dataset (both ``EncodedTrajectories``)."""

    def __init__(self, own: EncodedTrajectories, data: EncodedTrajectories, window: int):
        self.own, self.data, self.frames = own, data, window + 1
        self.own_starts = window_starts(own.offsets, np.arange(own.episodes), self.frames)
        self.data_starts = window_starts(data.offsets, np.arange(data.episodes), self.frames)

    def batch(self, n_own: int, n_data: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        parts = [self.own.sample(self.own_starts, n_own, self.frames, g),
                 self.data.sample(self.data_starts, n_data, self.frames, g)]
        return {k: torch.cat([p[k] for p in parts]) for k in ("states", "actions")}


def fit_predictor(predictor, windows: MixedWindows, cfg: RefineConfig, seed: int, device: torch.device,
                  progress: bool = True) -> list[float]:
    """Refit ``predictor`` in place on mixed windows (``amia.training.fit.minimise``); returns every step's loss."""
    n_own = round(cfg.batch_size * cfg.own_fraction)

    def batch_loss(g: torch.Generator) -> torch.Tensor:
        b = windows.batch(n_own, cfg.batch_size - n_own, g)
        s, a = b["states"].to(device), b["actions"].to(device)
        return (predictor.rollout(s[:, 0], a) - s[:, 1:]).pow(2).mean()

    predictor.requires_grad_(True)
    with tqdm(total=cfg.fit_steps, desc="refit predictor", unit="step", disable=not progress) as bar:
        losses = minimise(predictor, batch_loss, cfg.fit_steps, cfg.lr, seed, bar.update)
    predictor.requires_grad_(False)
    return losses


def _write_run(out: Path, run: Path, saved: dict, model: JEPA, meta: dict, data_path: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG, json.dumps(dict(saved, data=str(data_path.resolve())), indent=2))
    if (run / METRICS).exists():
        atomic_write_text(out / METRICS, (run / METRICS).read_text())
    save_checkpoint(out / CHECKPOINT, model, None, meta)


def _check_out(out: Path, run: Path, force: bool) -> bool:
    """Whether ``out`` holds a refinement of ``run`` to resume. ``--out`` must not be ``--run``, and another run
    there (or a refinement of another run) is refused unless ``force``, which starts the refinement over."""
    if run.resolve() == out.resolve():
        raise RunError(f"refine writes a new run: --out must differ from --run ({run})")
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out}: a file, expected a run directory")
    state = out / STATE_FILE
    if state.exists():
        _, meta, _ = read_checkpoint(state)
        source = meta_field(meta, "summary", state).get("from_run")
        if source is not None and Path(source).resolve() != run.resolve() and not force:
            raise RunError(f"--out {out} holds a refinement of another run ({source}); choose another --out, or pass "
                           "--force to replace it")
        return not force
    others = [n for n in (CONFIG, CHECKPOINT, METRICS, SUMMARY_FILE) if (out / n).exists()]
    if others and not force:
        raise RunError(f"--out {out} holds another run ({', '.join(others)}); refine never replaces it: choose another "
                       "--out, or pass --force to replace it")
    return False


def _resume(out: Path, summary: dict, model: JEPA):
    """The saved refinement in ``out`` (summary, experience; ``model`` takes its refined weights) if it was made
    with these settings. The state file is the whole resume point: the run files are written after it."""
    tensors, state_meta, _ = read_checkpoint(out / STATE_FILE)
    if {k: v for k, v in state_meta["config"].items() if k != "rounds"} != {
            k: v for k, v in summary["config"].items() if k != "rounds"}:
        raise RunError(f"{out} holds a refinement with other settings (only rounds may grow); choose another --out "
                       "or delete it")
    prefix = "model/model."
    load_weights(model, {"model/" + k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)},
                 out / STATE_FILE)
    own = (tensors["model/own_states"], tensors["model/own_actions"])
    return dict(state_meta["summary"], config=summary["config"]), own


def _round(model: JEPA, env_id: str, cfg: RefineConfig, r: int, own: tuple | None, data: EncodedTrajectories,
           device: torch.device, progress: bool) -> tuple[tuple, dict]:
    """One round: act, add the experience (``states (E, T+1, D)``, ``actions (E, T, A)``), refit the predictor;
    returns all experience so far and the round's record."""
    exp = act(model, env_id, cfg.act, cfg.episodes, cfg.steps, cfg.seed + r, device, progress)
    new = (encode_frames(model.encoder, exp["frames"], device), torch.from_numpy(exp["actions"]))
    states, actions = new if own is None else (torch.cat([own[0], new[0]]), torch.cat([own[1], new[1]]))
    held = torch.arange(states.shape[0]) % cfg.held_out == 0
    train = MixedWindows(EncodedTrajectories.from_episodes(states[~held], actions[~held]), data, cfg.window)
    val = MixedWindows(EncodedTrajectories.from_episodes(states[held], actions[held]), data, cfg.window)
    g = torch.Generator().manual_seed(10_000 + r)
    checks = {"own": val.batch(1024, 0, g), "data": val.batch(0, 1024, g)}
    before = {k: window_error(model.predictor, w, device) for k, w in checks.items()}
    losses = fit_predictor(model.predictor, train, cfg, seed=r, device=device, progress=progress)
    after = {k: window_error(model.predictor, w, device) for k, w in checks.items()}
    record = {"seed": cfg.seed + r, "episodes": cfg.episodes,
              "success_rate": float(np.mean(exp["final_distance"] < SUCCESS_RADIUS)),
              "own_episodes": int(states.shape[0]), "held_out_episodes": int(held.sum()),
              "own_error_before": before["own"], "own_error_after": after["own"],
              "data_error_before": before["data"], "data_error_after": after["data"],
              "final_loss": float(np.mean(losses[-100:]))}
    return (states, actions), record


def refine(run_dir: str | Path, out_dir: str | Path, cfg: RefineConfig | None = None, device: str = "cpu",
           progress: bool = True, force: bool = False) -> dict:
    """Refine the world model of ``run_dir`` on the agent's experience; write the refined run to ``out_dir``
    (config, checkpoint, ``refine.json``). Every finished round is saved there; rerunning resumes, and a larger
    ``rounds`` adds rounds to a finished refinement. Another run in ``out_dir`` is replaced only with ``force``.
    Returns the summary."""
    cfg = cfg or RefineConfig()
    run, out, dev = Path(run_dir), Path(out_dir), torch.device(check_device(device))
    resuming = _check_out(out, run, force)
    model, saved = load_model(run, device)
    env_id, data_path = saved["env_id"], data_file(run, saved)
    check_compatible(model, env_id)
    if not data_path.exists():
        raise FileNotFoundError(f"{data_path}: the run's dataset is needed to refit the predictor (it keeps the "
                                f"refit close to the data it was trained on)")
    _, meta, _ = read_checkpoint(run / CHECKPOINT)
    config = json.loads(json.dumps(dataclasses.asdict(cfg)))
    summary = {"from_run": str(run), "env_id": env_id, "config": config, "rounds": [], "git_rev": git_revision()}
    summary, own = _resume(out, summary, model) if resuming else (summary, None)
    if len(summary["rounds"]) >= cfg.rounds:
        if not _outputs_current(out, len(summary["rounds"])):  # a kill cut the last round's writes short
            _write_outputs(out, run, saved, model, meta, data_path, summary)
        return summary
    model.eval().requires_grad_(False)
    data = encode_dataset(model, data_path, dev, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for r in range(len(summary["rounds"]), cfg.rounds):
        own, record = _round(model, env_id, cfg, r, own, data, dev, progress)
        summary["rounds"].append(dict(record, seconds=time.time() - t0))
        state = torch.nn.Module()
        state.model = model
        for k, v in zip(("own_states", "own_actions"), own):
            state.register_buffer(k, v)
        save_checkpoint(out / STATE_FILE, state, None, {"config": config, "summary": summary})
        _write_outputs(out, run, saved, model, meta, data_path, summary)
    return summary


def _outputs_current(out: Path, rounds: int) -> bool:
    """Whether the refined run's files are all there and from ``rounds`` rounds."""
    try:
        _, meta, _ = read_checkpoint(out / CHECKPOINT)
        written = json.loads((out / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (out / CONFIG).exists() and (out / METRICS).exists() and len(written.get("rounds", [])) == rounds \
        and meta.get("refined", {}).get("rounds") == rounds


def _write_outputs(out: Path, run: Path, saved: dict, model: JEPA, meta: dict, data_path: Path, summary: dict) -> None:
    """The refined run's files (config, checkpoint, metrics, ``refine.json``) after ``summary``'s rounds."""
    rounds = len(summary["rounds"])
    _write_run(out, run, saved, model, dict(meta, refined={"from": str(run), "rounds": rounds}), data_path)
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2))


__all__ = ["MixedWindows", "RecordingWorld", "RefineConfig", "act", "fit_predictor", "refine", "window_error"]
