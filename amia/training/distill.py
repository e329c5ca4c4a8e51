"""The agent's own learning loop (Sec. 3.1.3, 3.3): compile Mode-2 into a Mode-1 policy, train the critic from memory.

Round 0 acts in Mode-2 and labels every visited state with the action it planned there. Each later round acts
with the current policy (Mode-1) on fresh episodes and labels the states *it* visits with Mode-2's first
action, planned from there with the full cold budget and its random restarts (the policy's proposal is one
start: a warm plan from a policy stuck at a wall only confirms it); the policy is refitted on every label so
far (act, plan, distil: the DAgger form of Sec. 3.1.3). Every perceived state goes to the short-term memory with its
intrinsic cost; the critic is then learned from memory only (never from the dataset file): by default the
goal-conditioned critic of ``amia.training.critics`` (the discounted number of moves to any stored goal state, by TD
over hindsight goals), the same rule as level 2's. Last, by
default, the policy is *amortised* (``amortise``, ``amia.models.policy.fit_policy_to_energy``): starting from the
label-fitted policy, it is trained to minimise Mode-2's own energy (goal distance over a short roll-out of the
policy through the frozen predictor, plus the critic on its last state) on the states in memory. Training
episodes use their own start/goal seeds, never the evaluation seed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from amia.agent.episodes import run_episodes
from amia.agent.load import AgentConfig, build_actor, frozen
from amia.agent.memory import ShortTermMemory
from amia.agent.surprise import SurpriseConfig
from amia.cost.configurator import build_cost, configure
from amia.envs import SUCCESS_RADIUS, evaluation_set, make_world, start_episodes
from amia.eval.diagnostics import fit_position_probe
from amia.infra.checkpoint import atomic_write_text, read_checkpoint, save_checkpoint
from amia.infra.provenance import git_revision
from amia.infra.run_dir import CRITIC, POLICY, PROBE, ProbeWeights, RunError, data_file, load_model
from amia.infra.validate import at_least, check, one_of, positive
from amia.models.critic import Critic
from amia.models.jepa import JEPA
from amia.models.policy import Policy, PolicyConfig
from amia.models.probe import LinearProbe
from amia.planning.planners import PLANNERS, PlannerConfig
from amia.training.critics import HindsightTD, fit_hindsight_critic
from amia.training.policy import AmortiseConfig, fit_policy, fit_policy_to_energy

STATE_FILE = "distill_state.safetensors"  # labels, memory and policy after each finished round: resume point
SUMMARY_FILE = "distill.json"


@dataclass
class CriticConfig(HindsightTD):
    """The critic: the goal-conditioned critic of ``amia.training.critics``, learned from the memory's
    trajectories with any stored state as the goal: ``TC(s, g)`` is the discounted number of ``stride``-step
    moves from ``s`` to ``g`` along the best path the memory shows (the reach task's cost of every step away from
    the goal), with the TD settings of ``HindsightTD`` (``gamma`` per move); its size and fitting schedule."""

    stride: int = 4
    hidden: int = 256
    layers: int = 3
    steps: int = 10000
    batch_size: int = 1024
    lr: float = 3e-4

    def __post_init__(self):
        super().__post_init__()
        at_least(self, 1, "stride", "hidden", "layers", "steps", "batch_size")
        positive(self, "lr")


@dataclass
class DistillConfig:
    """``rounds`` of ``episodes`` training episodes of ``steps`` steps each (start/goal seeds ``seed``, ``seed + 1``...),
    Mode-2 planning with ``planner`` and ``planning`` (re-planning every ``replan_every`` steps).

    ``label_span``: a label is the mean of the plan's next ``label_span`` actions (1: Mode-2's action itself).
    ``amortise``: the last stage, the policy trained on Mode-2's energy (``amia.training.policy.AmortiseConfig``).
    """

    rounds: int = 4
    episodes: int = 200
    steps: int = 100
    seed: int = 1
    replan_every: int = 4
    label_span: int = 1
    memory_capacity: int = 100_000
    planner: str = "gd"
    planning: PlannerConfig = field(default_factory=PlannerConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    amortise: AmortiseConfig = field(default_factory=AmortiseConfig)

    def __post_init__(self):
        at_least(self, 1, "rounds", "episodes", "steps", "replan_every", "label_span", "memory_capacity")
        check(self.seed >= 1, "seed", self.seed, "an integer >= 1 (seed 0's start/goal pairs are the evaluation "
              "protocol's)")
        one_of(self, "planner", PLANNERS)
        check(self.planning.horizon >= self.replan_every, "planning.horizon", self.planning.horizon,
              f"an integer >= replan_every ({self.replan_every}): a plan must last until the next re-plan")


def train_critic(memory: ShortTermMemory, dim: int, cfg: CriticConfig, seed: int = 0,
                 progress: bool = True) -> tuple[Critic, list[float], int]:
    """The critic, fitted on the memory's perceived trajectories only; returns it, its losses and the number of
    memory entries it learned from."""
    torch.manual_seed(seed)
    critic = Critic(dim, dim, cfg.hidden, cfg.layers)
    runs = memory.trajectories()
    with tqdm(total=cfg.steps, desc="critic", unit="step", disable=not progress) as bar:
        losses = fit_hindsight_critic(critic, runs["state"], runs["offsets"].numpy(), cfg.stride, cfg, cfg.steps,
                                      cfg.batch_size, cfg.lr, seed, progress=bar.update)
    return critic, losses, int(runs["state"].shape[0])


def _act_and_label(model: JEPA, env_id: str, cfg: DistillConfig, r: int, policy: Policy, position: LinearProbe,
                   memory: ShortTermMemory, progress: bool) -> tuple[dict, float]:
    """Round ``r``: Mode-2 (round 0) or the policy (later rounds) on fresh training episodes, every state labelled
    by Mode-2 and written to memory; returns the labels and the behaviour's success rate. The surprise watch stays
    off: where the policy stalls against a wall is where its next round needs the planner's labels."""
    acting = AgentConfig(planner=cfg.planner, mode=1 if r else 2, replan_every=cfg.replan_every, planning=cfg.planning,
                         surprise=SurpriseConfig(enabled=False))
    actor = build_actor(model, acting, make_world(env_id, 1).spec.max_step, "cpu",
                        {"policy": policy if r else None, "position": position}, memory=memory,
                        label_span=cfg.label_span, first_episode=r * cfg.episodes)
    pairs = evaluation_set(env_id, cfg.episodes, cfg.seed + r)
    world, goal_obs = start_episodes(env_id, pairs, cfg.seed + r)
    with tqdm(total=cfg.steps, desc=f"distill round {r + 1}/{cfg.rounds}", unit="step", disable=not progress) as bar:
        out = run_episodes(actor, world, goal_obs, cfg.steps, seed=cfg.seed + r, progress=bar.update)
    final = np.linalg.norm(out["positions"][:, -1] - pairs["goal"][:, :2], axis=1)
    return out["labels"], float(np.mean(final < SUCCESS_RADIUS))


def _position(model: JEPA, run_dir: Path, saved: dict) -> LinearProbe:
    path = data_file(run_dir, saved)
    if not path.exists():
        raise FileNotFoundError(f"{path}: the run's trajectory file (needed for the position read-out) is missing")
    return LinearProbe(fit_position_probe(model, path, torch.device("cpu")).weight.float())


def save_probe(run_dir: str | Path) -> LinearProbe:
    """Fit the run's position read-out on its data and save it (``probe.safetensors``): what the forbidden-region,
    keep-away and evade cost terms read positions with, without a policy (``amia distill`` also writes it)."""
    run_dir = Path(run_dir)
    model, saved = load_model(run_dir)
    position = _position(frozen(model, "cpu"), run_dir, saved)
    meta = {"env_id": saved["env_id"], "state_dim": model.cfg.encoder.dim, "action_dim": model.action_dim}
    save_checkpoint(run_dir / PROBE, ProbeWeights(position.weight), None, meta)
    return position


def _check_replace(run_dir: Path, cfg: DistillConfig, force: bool) -> None:
    """A policy already in the run, made with other settings (or by unknown means), is replaced only with ``force``
    (which also drops a resume point made with other settings)."""
    summary, state = run_dir / SUMMARY_FILE, run_dir / STATE_FILE
    if force:
        state.unlink(missing_ok=True)
        return
    if summary.exists():
        try:
            done = json.loads(summary.read_text())["config"]
            same = json.dumps({k: v for k, v in done.items() if k not in ("rounds", "critic", "amortise")},
                              sort_keys=True) == _resume_key(cfg)
        except (ValueError, KeyError, TypeError, AttributeError):
            same = False
        if not same:
            raise RunError(f"{summary}: the run's policy and critic were made with other distill settings; pass --force "
                           "to replace them")
    elif (run_dir / POLICY).exists() and not state.exists():
        raise RunError(f"{run_dir / POLICY} exists but no {SUMMARY_FILE} says how it was made; pass --force to replace it")


def distill(run_dir: str | Path, cfg: DistillConfig | None = None, progress: bool = True, force: bool = False) -> dict:
    """Train the policy and critic of a run; saves ``policy``, ``critic`` and ``probe`` files and ``distill.json``
    (files of an earlier distillation with other settings are replaced only with ``force``)."""
    cfg, run_dir = cfg or DistillConfig(), Path(run_dir)
    model, saved = load_model(run_dir)
    _check_replace(run_dir, cfg, force)
    model, env_id, dim = frozen(model, "cpu"), saved["env_id"], model.cfg.encoder.dim
    torch.manual_seed(cfg.seed)
    position = _position(model, run_dir, saved)
    bound = make_world(env_id, 1).spec.max_step
    policy = Policy(cfg.policy, dim, dim, model.action_dim, bound)
    memory = ShortTermMemory(cfg.memory_capacity, dim, dim)
    data: dict[str, list[torch.Tensor]] = {"state": [], "context": [], "action": []}
    history, t0 = [], time.time()
    first = _resume(run_dir / STATE_FILE, cfg, policy, memory, data, history)
    if first and progress:
        print(f"resuming {run_dir / STATE_FILE}: {first} of {cfg.rounds} rounds done", flush=True)
    for r in range(first, cfg.rounds):
        labels, success = _act_and_label(model, env_id, cfg, r, policy, position, memory, progress)
        for k in data:
            data[k].append(labels[k])
        losses = fit_policy(policy, *(torch.cat(data[k]) for k in ("state", "context", "action")), seed=cfg.seed + r)
        history.append({"round": r, "behaviour": "mode2" if r == 0 else "mode1",
                        "labels": int(sum(len(x) for x in data["state"])), "behaviour_success": success,
                        "policy_loss": float(np.mean(losses[-100:]))})
        _save_state(run_dir / STATE_FILE, cfg, policy, memory, data, history)
        if progress:
            print(json.dumps(history[-1]), flush=True)
    critic, closs, examples = train_critic(memory, dim, cfg.critic, cfg.seed, progress)
    amortised = amortise(policy, model, critic, memory, cfg.amortise, cfg.seed, progress)
    meta = {"env_id": env_id, "state_dim": dim, "action_dim": model.action_dim, "bound": bound}
    save_checkpoint(run_dir / POLICY, policy, None, {**meta, "policy": cfg.policy.__dict__})
    save_checkpoint(run_dir / CRITIC, critic, None, {**meta, "critic": cfg.critic.__dict__})
    save_checkpoint(run_dir / PROBE, ProbeWeights(position.weight), None, meta)
    summary = {"run": str(run_dir), "rounds": history, "memory_entries": len(memory), "memory_writes": memory.writes,
               "critic_examples": examples, "critic_loss": float(np.mean(closs[-100:])), **amortised,
               "seconds": round(time.time() - t0, 1), "git_rev": git_revision(),
               "config": json.loads(json.dumps(cfg, default=lambda o: o.__dict__))}
    atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
    return summary


def amortise(policy: Policy, model, critic: Critic, memory: ShortTermMemory, cfg: AmortiseConfig, seed: int = 0,
             progress: bool = True) -> dict:
    """The amortisation stage (module docstring) on the memory's perceived states and their episodes' goals;
    changes ``policy`` in place and returns the summary's fields (nothing when ``cfg.enabled`` is false)."""
    if not cfg.enabled:
        return {}
    e = memory.entries()
    seen = ~e["imagined"]
    model.requires_grad_(False)
    critic.requires_grad_(False)
    task = configure("reach", mode=2, final_weight=cfg.final_weight, critic_weight=cfg.critic_weight,
                     horizon=cfg.horizon)
    with tqdm(total=cfg.steps, desc="amortise policy", unit="step", disable=not progress) as bar:
        losses = fit_policy_to_energy(policy, model.predictor, lambda goal: build_cost(task, goal, critic=critic),
                                      e["state"][seen], e["context"][seen], cfg, seed, progress=bar.update)
    return {"amortise_states": int(seen.sum()), "amortise_energy_first": float(np.mean(losses[:100])),
            "amortise_energy_last": float(np.mean(losses[-100:]))}


def _resume_key(cfg: DistillConfig) -> str:
    """Everything a resumed job must share with the saved one (more rounds may be asked for; the critic and the
    amortisation, both after the rounds, may change)."""
    d = json.loads(json.dumps(cfg, default=lambda o: o.__dict__))
    d.pop("rounds")
    d.pop("critic")
    d.pop("amortise", None)
    return json.dumps(d, sort_keys=True)


def _save_state(path: Path, cfg: DistillConfig, policy: Policy, memory: ShortTermMemory, data: dict,
                history: list) -> None:
    holder = torch.nn.Module()
    holder.policy = policy
    for k, v in memory.state_dict().items():
        holder.register_buffer(f"memory_{k}", v)
    for k, v in data.items():
        holder.register_buffer(f"labels_{k}", torch.cat(v))
    save_checkpoint(path, holder, None, {"key": _resume_key(cfg), "history": history})


def _resume(path: Path, cfg: DistillConfig, policy: Policy, memory: ShortTermMemory, data: dict,
            history: list) -> int:
    """Load the state of a previous job with the same settings; the number of rounds it finished (0: none)."""
    if not path.exists():
        return 0
    tensors, meta, _ = read_checkpoint(path)
    saved = json.loads(meta.get("key") or "{}")
    if json.dumps(saved, sort_keys=True) != _resume_key(cfg):
        raise RunError(f"{path} was written with other distill settings; delete it to start again")
    policy.load_state_dict({k[len("model/policy."):]: v for k, v in tensors.items() if k.startswith("model/policy.")})
    memory.load_state_dict({k[len("model/memory_"):]: v for k, v in tensors.items() if k.startswith("model/memory_")})
    for k in data:
        data[k].append(tensors[f"model/labels_{k}"])
    history.extend(meta["history"][: cfg.rounds])
    return min(len(meta["history"]), cfg.rounds)


__all__ = ["CriticConfig", "DistillConfig", "amortise", "distill", "train_critic"]
