"""The run directory: one folder per trained agent, and reading back what training wrote there.

::

    config.json                 env id, data file and the whole training config (what the run was started with)
    data.h5                     the collected dataset (when no --data was given)
    checkpoint.safetensors      the world model: weights + optimizer state + step (atomic writes)
    log.jsonl, tb/              one JSON line per logging interval; the same scalars for TensorBoard
    metrics.json                the world model's final diagnostics
    level2.safetensors, level2.json                    H-JEPA level 2 (``amia train --levels 2``)
    level2_critic.safetensors, level2_critic.json      level 2's critic
    policy/critic/probe.safetensors, distill.json      Mode-1 policy, level-1 critic, position read-out

Loading never runs code (safetensors + JSON); every part is checked against the run it is loaded into.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from amia.infra.checkpoint import CheckpointError, load_weights, meta_field, read_checkpoint
from amia.infra.config import ConfigError, from_dict
from amia.models.action_free import ActionFreeJEPA
from amia.models.critic import Critic
from amia.models.jepa import JEPA, JEPAConfig
from amia.models.level2 import HJEPAConfig, Level2
from amia.models.policy import Policy, PolicyConfig
from amia.models.probe import LinearProbe
from amia.models.reflex import Reflex, ReflexConfig

CONFIG, CHECKPOINT, METRICS, DATA = "config.json", "checkpoint.safetensors", "metrics.json", "data.h5"
LEVEL2, LEVEL2_SUMMARY = "level2.safetensors", "level2.json"
CRITIC2, CRITIC2_SUMMARY = "level2_critic.safetensors", "level2_critic.json"
POLICY, CRITIC, PROBE = "policy.safetensors", "critic.safetensors", "probe.safetensors"
REFLEX = "reflex.safetensors"


class RunError(ValueError):
    """A run directory that cannot be started, resumed or read as asked."""


def read_config(run_dir: str | Path) -> dict:
    """The run's ``config.json`` (``env_id``, ``data``, ``train``)."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise RunError(f"{run_dir}: no {CONFIG}; not a run directory (train one with `amia train --out {run_dir}`)")
    try:
        saved = json.loads(path.read_text())
    except ValueError as e:  # not JSON, or not text
        raise RunError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("train"), dict) or "env_id" not in saved:
        raise RunError(f"{path}: expected a mapping with 'env_id' and a 'train' section, got "
                       f"{type(saved).__name__ if not isinstance(saved, dict) else 'keys ' + ', '.join(sorted(saved))}")
    return saved


def data_file(run_dir: str | Path, saved: dict) -> Path:
    """The run's trajectory file: ``--data`` as given at training, else the run's own ``data.h5``."""
    return Path(saved.get("data") or Path(run_dir) / DATA)


def config_diff(a, b, prefix: str = "") -> list[str]:
    """Human-readable differences between two nested dicts (``key: was X, now Y``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in config_diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: was {a!r}, now {b!r}"]


def weights_fingerprint(model: nn.Module) -> str:
    """A short hash of a model's weights: a part trained on another part's states is only valid on those weights."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_model(run_dir: str | Path, device: str = "cpu") -> tuple[JEPA, dict]:
    """The trained world model of a run (weights from its checkpoint, eval mode; with the data's action box where
    the data declared one) and its ``config.json``."""
    saved = read_config(run_dir)
    if saved.get("kind") == "action_free":
        raise RunError(f"{run_dir} was trained on frames without actions (amia pretrain): give it actions first with "
                       f"`amia posttrain --run {run_dir} --data LABELLED_FILE --out NEW_RUN`")
    try:
        cfg = from_dict(JEPAConfig, saved["train"].get("jepa", {}), prefix="train.jepa.")
    except (ConfigError, TypeError) as e:
        raise RunError(f"{Path(run_dir) / CONFIG}: {e}") from None
    path = Path(run_dir) / CHECKPOINT
    tensors, meta, _ = read_checkpoint(path)
    box = (meta["action_low"], meta["action_high"]) if "action_low" in meta and "action_high" in meta else None
    model = JEPA(cfg, tuple(meta_field(meta, "obs_shape", path)), meta_field(meta, "action_dim", path), box)
    load_weights(model, tensors, path)
    return model.to(device).eval(), saved


def load_action_free(run_dir: str | Path, device: str = "cpu") -> tuple[ActionFreeJEPA, dict]:
    """The finished world model of a run trained on frames alone (``amia pretrain``), frozen, and its
    ``config.json``; ``RunError`` for any other run or an unfinished one."""
    from amia.training.world_model import PretrainConfig

    saved = read_config(run_dir)
    if saved.get("kind") != "action_free":
        raise RunError(f"{run_dir}: not a run trained on frames alone (made by `amia pretrain`)")
    try:
        cfg = from_dict(PretrainConfig, saved["train"], prefix="train.")
    except (ConfigError, TypeError) as e:
        raise RunError(f"{Path(run_dir) / CONFIG}: {e}") from None
    path = Path(run_dir) / CHECKPOINT
    tensors, meta, _ = read_checkpoint(path)
    if meta_field(meta, "step", path) < cfg.steps:
        raise RunError(f"{run_dir}: pretraining is at step {meta['step']} of {cfg.steps}; finish it first (rerun the "
                       "same `amia pretrain` command)")
    model = ActionFreeJEPA(cfg.jepa, tuple(meta_field(meta, "obs_shape", path)), cfg.latent_action)
    load_weights(model, tensors, path)
    return model.to(device).eval().requires_grad_(False), saved


def finished_level1(run_dir: str | Path, device: str = "cpu") -> tuple[JEPA, dict]:
    """The finished, frozen level-1 model of a run and its ``config.json`` (``RunError`` if unfinished)."""
    saved = read_config(run_dir)
    _, meta, _ = read_checkpoint(Path(run_dir) / CHECKPOINT)
    steps = saved["train"].get("steps", 0)
    if not isinstance(meta.get("step", 0), int):
        raise CheckpointError(f"{Path(run_dir) / CHECKPOINT}: step={meta.get('step')!r}: expected an integer")
    if meta.get("step", 0) < steps:
        raise RunError(f"{run_dir}: level 1 is at step {meta.get('step')} of {steps}; finish it first "
                       f"(`amia train --out {run_dir}` resumes it)")
    model, _ = load_model(run_dir, device)
    return model.requires_grad_(False), saved


def _finished(path: Path, what: str, run_dir) -> tuple[dict, dict, dict]:
    """Tensors, meta and config of a finished checkpoint of ``amia train --levels 2``."""
    tensors, meta, _ = read_checkpoint(path)
    cfg, step = meta_field(meta, "config", path), meta_field(meta, "step", path)
    if step < meta_field(cfg, "steps", path):
        raise CheckpointError(f"{path}: {what} is at step {meta['step']} of {cfg['steps']}; rerun "
                              f"`amia train --levels 2 --out {run_dir}` to finish it")
    return tensors, meta, cfg


def load_level2(run_dir: str | Path, device: str = "cpu", level1: JEPA | None = None) -> tuple[Level2, dict]:
    """The trained level 2 of a run (eval mode) and its checkpoint meta; ``CheckpointError`` if it is missing,
    unfinished, made for another level-1 state size, or (``level1`` given) trained on other level-1 weights."""
    path = Path(run_dir) / LEVEL2
    if not path.exists():
        raise CheckpointError(f"{path}: no level-2 model; train one with `amia train --levels 2 --out {run_dir}`")
    tensors, meta, raw = _finished(path, "level 2", run_dir)
    for key in ("level1_dim", "level1", "level1_action_dim"):
        meta_field(meta, key, path)
    dim = read_config(run_dir)["train"].get("jepa", {}).get("encoder", {}).get("dim", JEPAConfig().encoder.dim)
    if meta["level1_dim"] != dim:
        raise CheckpointError(f"{path}: level 2 was trained on {meta['level1_dim']}-D level-1 states, but the run's "
                              f"level 1 gives {dim}-D states")
    if level1 is not None and weights_fingerprint(level1) != meta["level1"]:
        raise CheckpointError(f"{path}: level 2 was trained on other level-1 weights than the given model's")
    if raw.get("abstract") == "latent" and "prior" not in raw:  # latent abstract actions saved before the prior
        raw = {**raw, "prior": 0.0}
    level2 = Level2(from_dict(HJEPAConfig, raw), meta["level1_dim"], meta["level1_action_dim"])
    load_weights(level2, tensors, path)
    return level2.to(device).eval(), meta


def load_level2_critic(run_dir: str | Path, device: str = "cpu", level2: Level2 | None = None) -> Critic | None:
    """The run's level-2 critic (eval mode, frozen), or ``None`` if it has none; ``CheckpointError`` if it is
    unfinished or (``level2`` given) was trained on other level-2 weights."""
    path = Path(run_dir) / CRITIC2
    if not path.exists():
        return None
    tensors, meta, cfg = _finished(path, "the level-2 critic", run_dir)
    for key in ("level2", "dim"):
        meta_field(meta, key, path)
    if level2 is not None and meta["level2"] != weights_fingerprint(level2):
        raise CheckpointError(f"{path}: the level-2 critic was trained on other level-2 weights than the run's; "
                              f"delete it and rerun `amia train --levels 2 --out {run_dir}`")
    critic = Critic(meta["dim"], meta["dim"], cfg["hidden"], cfg["layers"])
    both = nn.ModuleDict({"critic": critic, "target": Critic(meta["dim"], meta["dim"], cfg["hidden"], cfg["layers"])})
    load_weights(both, tensors, path)
    return critic.to(device).eval().requires_grad_(False)


class ProbeWeights(nn.Module):
    """A frozen linear read-out as a buffer (not a parameter), so it is saved like every other artefact."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight.clone())


def load_parts(run_dir: str | Path, state_dim: int) -> dict:
    """The policy, critic and position read-out of a run, where ``amia distill`` made them, and the reflex, where
    ``amia reflex`` made it (``None`` otherwise)."""
    run_dir = Path(run_dir)
    parts: dict = {"policy": None, "critic": None, "position": None, "reflex": None}
    if (run_dir / PROBE).exists():
        tensors, _, _ = read_checkpoint(run_dir / PROBE)
        parts["position"] = LinearProbe(tensors["model/weight"])
    if (run_dir / POLICY).exists():
        tensors, meta, _ = read_checkpoint(run_dir / POLICY)
        for key in ("policy", "state_dim", "action_dim", "bound"):
            meta_field(meta, key, run_dir / POLICY)
        policy = Policy(PolicyConfig(**meta["policy"]), meta["state_dim"], meta["state_dim"], meta["action_dim"],
                        meta["bound"])
        load_weights(policy, tensors, run_dir / POLICY)
        parts["policy"] = policy.eval()
    if (run_dir / CRITIC).exists():
        tensors, meta, _ = read_checkpoint(run_dir / CRITIC)
        for key in ("critic", "state_dim"):
            meta_field(meta, key, run_dir / CRITIC)
        critic = Critic(meta["state_dim"], meta["state_dim"], meta["critic"]["hidden"], meta["critic"]["layers"])
        load_weights(critic, tensors, run_dir / CRITIC)
        parts["critic"] = critic.eval()
    if (run_dir / REFLEX).exists():
        tensors, meta, _ = read_checkpoint(run_dir / REFLEX)
        for key in ("reflex", "frame_shape", "context_dim", "action_dim", "bound"):
            meta_field(meta, key, run_dir / REFLEX)
        reflex = Reflex(ReflexConfig(**meta["reflex"]), tuple(meta["frame_shape"]), meta["context_dim"],
                        meta["action_dim"], meta["bound"])
        load_weights(reflex, tensors, run_dir / REFLEX)
        parts["reflex"] = reflex.eval()
        if reflex.context_dim != state_dim:
            raise RunError(f"{run_dir}: the reflex expects {reflex.context_dim}-D goal states, the model gives {state_dim}")
    for name in ("policy", "critic"):
        if parts[name] is not None and parts[name].state_dim != state_dim:
            raise RunError(f"{run_dir}: the {name} expects {parts[name].state_dim}-D states, the model gives {state_dim}")
    return parts


__all__ = ["CHECKPOINT", "CONFIG", "CRITIC", "CRITIC2", "CRITIC2_SUMMARY", "DATA", "LEVEL2", "LEVEL2_SUMMARY",
           "METRICS", "POLICY", "PROBE", "REFLEX", "ProbeWeights", "RunError", "config_diff", "data_file", "finished_level1",
           "load_level2", "load_level2_critic", "load_model", "load_parts", "read_config", "weights_fingerprint"]
