"""Training the JEPA world model from reward-free trajectories (Sec. 4.4-4.5), on one process or several (DDP).

The run directory's layout is in ``amia.infra.run_dir``. Running the same command again continues from the
checkpoint (``amia.training.loop``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from amia.data.collect import CollectConfig, collect
from amia.data.dataset import DatasetInfo, check_world, read_info, split_episodes, verify_frames
from amia.data.sampler import WindowSampler
from amia.envs import ENV_SPECS, env_spec
from amia.eval.diagnostics import representation_report
from amia.infra import distributed as dist_utils
from amia.infra.checkpoint import CheckpointError, atomic_write_text, read_checkpoint
from amia.infra.config import ConfigError, apply_overrides, from_dict, to_dict
from amia.infra.host import set_threads
from amia.infra.provenance import git_revision, machine
from amia.infra.run_dir import CHECKPOINT, CONFIG, DATA, METRICS, RunError, config_diff, read_config
from amia.infra.validate import at_least, check_device, positive, refuse_links, within
from amia.models.action_free import ActionFreeJEPA, LatentActionConfig
from amia.models.jepa import JEPA, JEPAConfig
from amia.training.loop import TrainingLoop, warmup_cosine


@dataclass
class TrainConfig:
    """Everything that defines a training run (``key=value`` overrides address these fields, e.g. ``jepa.loss.cov=4``).

    ``init``: a run directory whose weights start this run (``amia pretrain``'s, typically): its encoder, and every
    other tensor whose name and shape this model shares; the rest starts fresh. Empty: all fresh."""

    jepa: JEPAConfig = field(default_factory=JEPAConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    steps: int = 2000
    batch_size: int = 64
    window: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int = 100
    grad_clip: float = 1.0
    val_fraction: float = 0.1
    val_every: int = 1000
    log_every: int = 20
    checkpoint_every: int = 100
    chunk_frames: int = 400_000
    diag_windows: int = 512
    seed: int = 0
    threads: int = 0
    init: str = ""

    def __post_init__(self):
        at_least(self, 1, "steps", "window", "log_every", "checkpoint_every", "chunk_frames", "diag_windows")
        at_least(self, 2, "batch_size")  # VICReg / SIGReg statistics need two windows
        at_least(self, 0, "warmup", "val_every", "weight_decay", "grad_clip", "seed", "threads")
        positive(self, "lr")
        within(self, "val_fraction", 0, 1, open_low=True, open_high=True)


@dataclass
class PretrainConfig(TrainConfig):
    """Training on frames alone (``amia pretrain``, Sec. 4.5): the ``TrainConfig`` fields (``collect`` unused) plus
    the latent action that stands in for the missing one (``amia.models.action_free``). The inverse-dynamics term
    is off: there is no action to recover."""

    latent_action: LatentActionConfig = field(default_factory=LatentActionConfig)


ACTION_FREE = "action_free"  # config.json's "kind" for a run trained on frames alone


# The stochastic worlds: a smaller predictor, 8-step windows, and a discrete latent with a value for each outcome
# the data shows (gust: down, up, none; chaser: 8 directions), Sec. 4.5 and 4.8. No sparsity: at 0.05 value 0 won
# the gust band's transitions too and no value learned the push up (docs/findings.md, section 8).
_STOCHASTIC = ["jepa.predictor.hidden=256", "window=8", "steps=2000", "jepa.predictor.latent=discrete"]

WORLD_PRESETS: dict[str, list[str]] = {
    "amia/TwoRooms-v0": [],
    # Random layouts: the wall alone satisfies the variance term and is trivially predictable, so a weak
    # inverse-dynamics term lets the encoder drop the agent (benchmarks/results/wall_idm_sweep_h200.json).
    # A random walk almost never threads the door (amia.data.policies.DoorSeekingWalk), so half the
    # episodes are collected by a walk that goes through it.
    "amia/Wall-v0": ["jepa.loss.idm=10", "collect.policy=doors"],
    # 96x96 frames seen at 32x32, like TwoRooms' 64x64 at downsample 2: the same cost per frame on a CPU.
    "amia/Maze-v0": ["jepa.encoder.downsample=3"],
    # A wider predictor trained longer on shorter windows: its futures land within 3 px of the gust's outcomes
    # in 0.88 of training-seed cases, against 0.58 with the shared settings (docs/uncertainty.md).
    "amia/Gust-v0": _STOCHASTIC + ["jepa.predictor.latent_dim=4", "jepa.predictor.hidden=512", "window=4", "steps=6000"],
    "amia/Hazard-v0": _STOCHASTIC + ["jepa.predictor.latent_dim=4"],
    # The chaser moves at random in the data: one encoder for every channel leaves it out of the state; a stream
    # of its own keeps it (docs/uncertainty.md).
    "amia/Chaser-v0": _STOCHASTIC + ["jepa.predictor.latent_dim=8", "jepa.encoder.streams=[[0,1],[2]]"],
}


REVIVE_EVERY = 100


def revive_due(cfg: TrainConfig, step: int) -> bool:
    """Whether step ``step`` revives the discrete latent's dead values (``PredictorConfig.latent_revive``): every
    ``REVIVE_EVERY`` steps in the first half of training, after the first ``REVIVE_EVERY``."""
    return bool(cfg.jepa.predictor.latent_revive) and 0 < step < cfg.steps / 2 and step % REVIVE_EVERY == 0


def default_config(env_id: str) -> TrainConfig:
    """The training defaults for a world: ``TrainConfig()`` plus that world's preset overrides."""
    return apply_overrides(TrainConfig(), WORLD_PRESETS.get(env_id, []))


def load_run_config(run_dir: str | Path) -> tuple[dict, TrainConfig]:
    """The ``config.json`` of a run and its ``TrainConfig``."""
    saved = read_config(run_dir)
    try:
        return saved, from_dict(TrainConfig, saved["train"])
    except ConfigError as e:
        raise RunError(f"{Path(run_dir) / CONFIG}: in 'train': {e}") from None


def settings(cfg: TrainConfig) -> dict:
    """``cfg`` as the run records it; an empty ``init`` is left out, so runs made before it existed still resume."""
    out = to_dict(cfg)
    if not out.get("init"):
        out.pop("init", None)
    return out


def _wanted(env_id: str, cfg: TrainConfig, data: str | None) -> dict:
    """The ``config.json`` that a run with these settings has."""
    kind = {"kind": ACTION_FREE} if isinstance(cfg, PretrainConfig) else {}
    return {"env_id": env_id, "data": str(Path(data).resolve()) if data else None, "train": settings(cfg), **kind}


def finished_metrics(env_id: str, out: str | Path, cfg: TrainConfig, data: str | None = None) -> dict | None:
    """``metrics.json`` of a run in ``out`` that finished with exactly these settings; ``None`` otherwise.

    Rerunning ``train`` on a finished run trains no further but recomputes the diagnostics; callers that only
    need the trained model (``amia train --levels 2``) skip that. ``None`` covers every other case (no run,
    other settings, unfinished), where ``train`` starts, refuses or resumes the run as usual.
    """
    out = Path(out)
    paths = [out / n for n in (CONFIG, CHECKPOINT, METRICS)]
    try:  # anything unreadable here is named by ``train``, which reads it again
        if not all(p.is_file() for p in paths) or config_diff(json.loads(paths[0].read_text()), _wanted(env_id, cfg, data)):
            return None
        _, meta, _ = read_checkpoint(paths[1])
        metrics = json.loads(paths[2].read_text())
    except (CheckpointError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and meta.get("step", 0) >= cfg.steps else None


def prepare_run(env_id: str, out: Path, cfg: TrainConfig, data: str | None, extra: dict | None = None) -> bool:
    """Write or check ``config.json`` (with ``extra`` entries): a rerun must ask for the same run it resumes. True
    if it was written now."""
    wanted = {**_wanted(env_id, cfg, data), **(extra or {})}
    path = out / CONFIG
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out}: a file, expected a run directory")
    refuse_links(path)
    if path.exists():
        diffs = config_diff(read_config(out), wanted)
        if diffs:
            raise RunError(f"{out} holds a run started with other settings ({'; '.join(diffs[:5])}); "
                           "rerun with the same settings to resume, or choose another --out")
        return False
    if (out / CHECKPOINT).exists():
        raise RunError(f"{out} holds {CHECKPOINT} but no {CONFIG}: not a run that this command can resume, and "
                       "amia does not replace another run's files; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(wanted, indent=2))
    return True


def check_data(env_id: str | None, data_path: Path, frames: bool = False) -> DatasetInfo:
    """The ``DatasetInfo`` of a trajectory file, from the env ``env_id`` (``None``: any), checked against the world
    when it is one of amia's (``amia.data.check_world``) and, with ``frames``, every frame read once (checksums);
    ``RunError`` if it is missing or from another env."""
    if not data_path.exists():
        raise RunError(f"--data {data_path}: no such file")
    info = read_info(data_path)
    if env_id is not None and info.env_id != env_id:
        raise RunError(f"{data_path} was collected in {info.env_id!r}, but --env is {env_id!r}")
    if (env_id or info.env_id) in ENV_SPECS:
        check_world(info, env_id or info.env_id)
    if frames:
        verify_frames(data_path)
    return info


def _data(env_id: str | None, out: Path, cfg: TrainConfig, data: str | None, progress: bool) -> DatasetInfo:
    """Bind the run directory to its settings and data, collecting the data first when none was given (only
    amia's own worlds collect here; any other env's data comes with ``data``, whose env is the run's when
    ``env_id`` is ``None``)."""
    distributed, rank = dist_utils.is_distributed(), dist_utils.rank()
    data_path = Path(data) if data else out / DATA
    if data:  # refuse a bad --data before config.json binds the run directory to it
        env_id = check_data(env_id, data_path, frames=True).env_id
    elif env_id is None:
        raise ValueError("train needs an env id or a data file")
    elif not data_path.exists():
        env_spec(env_id)
    created = rank == 0 and prepare_run(env_id, out, cfg, data)
    try:
        if distributed:
            torch.distributed.barrier()
        if not data_path.exists():
            if rank == 0:
                collect(env_id, data_path, cfg.collect, progress=progress)
            if distributed:
                torch.distributed.barrier()
        return check_data(env_id, data_path, frames=not data)
    except BaseException:
        if created:  # a failed start leaves no config.json behind to refuse the corrected command
            (out / CONFIG).unlink(missing_ok=True)
        raise


def _identity(env_id: str, info: DatasetInfo, cfg: TrainConfig) -> dict:
    """What a resumed checkpoint must carry: the world, the shapes of its data (and its action box, where it
    declares one) and the training settings."""
    return {"env_id": env_id, "obs_shape": list(info.obs_shape), "action_dim": info.action_dim,
            **(action_box(info) or {}), "config": settings(cfg)}


def action_box(info: DatasetInfo) -> dict | None:
    """The action bounds per dimension that a data file declares (``action_low``, ``action_high``); ``None`` for
    files that declare none (amia's worlds: their spec's ``max_step``)."""
    if info.action_low is None or info.action_high is None:
        return None
    return {"action_low": list(info.action_low), "action_high": list(info.action_high)}


def _device(device: str, distributed: bool) -> torch.device:
    """The torch device of this process (``cuda:LOCAL_RANK`` in a distributed GPU run); an unknown or absent
    device is a ``FieldError`` naming it."""
    check_device(device)
    if device.startswith("cuda") and distributed:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    return torch.device(device)


def window_samplers(info: DatasetInfo, cfg: TrainConfig) -> tuple[WindowSampler, tuple[WindowSampler, WindowSampler]]:
    """Training windows, then the diagnostics' windows from training and held-out episodes (16 steps where the
    episodes are long enough)."""
    train_eps, val_eps = split_episodes(info.episodes, cfg.val_fraction)
    sampler = WindowSampler(info.path, cfg.window, cfg.batch_size, train_eps, cfg.chunk_frames, seed=cfg.seed)
    diag_steps = max(cfg.window, min(16, int(np.diff(info.episode_offsets).max()) - 1))
    probe_sampler = WindowSampler(info.path, diag_steps, 256, train_eps, cfg.chunk_frames, seed=cfg.seed + 1)
    val_sampler = WindowSampler(info.path, diag_steps, 256, val_eps, cfg.chunk_frames, seed=cfg.seed + 2)
    return sampler, (probe_sampler, val_sampler)


def train(env_id: str | None, out: str | Path, cfg: TrainConfig | None = None, data: str | None = None,
          device: str = "cpu", progress: bool = True, stop_after: int | None = None) -> dict:
    """Train (or resume) a JEPA world model in ``out``; returns the final metrics (also in ``metrics.json``).

    With a ``PretrainConfig`` the model learns from the frames alone (``ActionFreeJEPA``; the data's actions, if
    any, are ignored), and the run is one that ``amia posttrain`` gives actions to.
    ``env_id=None`` with ``data``: the data's env, any one (action size and bounds from the file). ``stop_after``
    stops the run as an interruption would, once that many steps are done (used by tests).
    """
    cfg, out = cfg or TrainConfig(), Path(out)
    distributed = dist_utils.init_from_env(device)
    rank, world = dist_utils.rank(), dist_utils.world_size()
    dev = _device(device, distributed)
    set_threads(cfg.threads, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    info = _data(env_id, out, cfg, data, progress)
    env_id, sampler, (probe_sampler, val_sampler) = info.env_id, *window_samplers(info, cfg)

    box, model = _model(cfg, info)
    model = model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loop = TrainingLoop("train", out / CHECKPOINT, model, opt, cfg.steps, _identity(env_id, info, cfg), out, cfg.log_every,
                        cfg.checkpoint_every, progress, main=rank == 0, optional=("config",))
    loop.resume()
    ddp, logger = torch.nn.parallel.DistributedDataParallel(model) if distributed else model, loop.logger

    def loss(step: int) -> dict:
        batch = sampler.batch(step, rank)
        obs, actions = torch.from_numpy(batch["obs"]).to(dev), torch.from_numpy(batch["action"]).to(dev)
        if revive_due(cfg, step):
            model.revive_latent_values(obs, actions, seed=cfg.seed * 1_000_003 + step)
        return ddp(obs, actions, seed=cfg.seed * 1_000_003 + step, progress=step / cfg.steps)

    def diagnose() -> dict:
        return representation_report(model, probe_sampler, val_sampler, dev, val_windows=cfg.diag_windows,
                                     state_names=info.state_names)

    def validate(step: int) -> None:
        if cfg.val_every and step % cfg.val_every == 0 and step < cfg.steps and rank == 0:
            logger.log(step, "val", _scalars(diagnose()))

    frames = cfg.batch_size * world * (cfg.window + 1)
    halted = loop.run(loss, warmup_cosine(cfg.lr, cfg.warmup, cfg.steps), cfg.grad_clip, every_step=validate,
                      log_extra=lambda n, secs: {"samples_per_s": n * frames / secs}, agree=_agreement(distributed, dev),
                      stop_after=stop_after)
    if halted is not None or rank != 0:
        return halted or {}
    report = diagnose()
    logger.log(loop.step, "final", _scalars(report))
    logger.close()
    metrics = {"env_id": env_id, **(box or {}), "steps": loop.step, "train_seconds": round(loop.seconds, 1),
               "samples_per_s": round(loop.step * frames / max(loop.seconds, 1e-9), 1), "world_size": world,
               "device": str(dev), "seed": cfg.seed, "git_rev": git_revision(), "machine": machine(), **report}
    atomic_write_text(out / METRICS, json.dumps(metrics, indent=2))
    return metrics


def _model(cfg: TrainConfig, info: DatasetInfo) -> tuple[dict | None, JEPA]:
    """The data's action box (if it declares one) and the seeded, fresh model that ``cfg`` asks for: action-free
    for a ``PretrainConfig``; started from ``cfg.init``'s weights where given."""
    torch.manual_seed(cfg.seed)
    box = action_box(info)
    if isinstance(cfg, PretrainConfig):
        box, model = None, ActionFreeJEPA(cfg.jepa, info.obs_shape, cfg.latent_action)
    else:
        model = JEPA(cfg.jepa, info.obs_shape, info.action_dim, box and (box["action_low"], box["action_high"]))
    if cfg.init:
        start_from(model, Path(cfg.init))
    return box, model


def start_from(model: JEPA, run: Path) -> list[str]:
    """Copy into ``model`` the tensors of ``run``'s checkpoint that it shares by name and shape (the encoder at
    least, else ``RunError``); returns their names."""
    tensors, _, _ = read_checkpoint(run / CHECKPOINT)
    own = model.state_dict()
    shared = {k[len("model/"):]: v for k, v in tensors.items()
              if k.startswith("model/") and k[len("model/"):] in own and own[k[len("model/"):]].shape == v.shape}
    encoder = [k for k in own if k.startswith("encoder.")]
    missing = [k for k in encoder if k not in shared]
    if missing:
        raise RunError(f"init={run}: its encoder does not fit this model's (e.g. {missing[0]}); start from a run with "
                       "the same encoder settings and frame size")
    model.load_state_dict(shared, strict=False)
    return sorted(shared)


def _agreement(distributed: bool, dev: torch.device):
    """``agree(stopping) -> bool``: whether any process wants to stop (an all-reduce under DDP)."""

    def agree(stopping: bool) -> bool:
        if not distributed:
            return stopping
        flag = torch.tensor([float(stopping)], device=dev)
        torch.distributed.all_reduce(flag)
        return bool(flag.item())

    return agree


def _scalars(report: dict) -> dict:
    return {k: v for k, v in report.items() if isinstance(v, (int, float))}


__all__ = ["ACTION_FREE", "PretrainConfig", "TrainConfig",
           "WORLD_PRESETS", "default_config", "finished_metrics", "load_run_config", "set_threads",
           "train"]
