"""Training the JEPA world model from reward-free trajectories (Sec. 4.5): loop, logs, checkpoints, resume, DDP.

A run directory holds everything of one run::

    config.json              env id, data file and the whole TrainConfig (what the run was started with)
    data.h5                  the collected dataset (when no --data was given)
    checkpoint.safetensors   weights + optimizer state + step; rewritten atomically every few steps
    log.jsonl, tb/           one JSON line per logging interval; the same scalars for TensorBoard
    metrics.json             the final diagnostics (probe_r2, pred_error_px_h16, ...)

Running the same command again continues from the checkpoint: batches depend only on (seed, step), so an
interrupted and resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from amia import distributed as dist_utils
from amia.checkpoint import CheckpointError, atomic_write_text, load_optimizer, load_weights, read_checkpoint, save_checkpoint
from amia.config import apply_overrides, from_dict, to_dict
from amia.data.collect import CollectConfig, collect
from amia.data.dataset import read_info
from amia.data.sampler import WindowSampler
from amia.diagnostics import representation_report
from amia.envs import env_spec
from amia.jepa import JEPA, JEPAConfig
from amia.provenance import git_revision, machine


@dataclass
class TrainConfig:
    """Everything that defines a training run (``key=value`` overrides address these fields, e.g. ``jepa.loss.cov=4``)."""

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


WORLD_PRESETS: dict[str, list[str]] = {
    "amia/TwoRooms-v0": [],
    # Random layouts: the wall alone satisfies the variance term and is trivially predictable, so a weak
    # inverse-dynamics term lets the encoder drop the agent (benchmarks/results/wall_idm_sweep_h200.json).
    # A random walk almost never threads the door (amia.data.policies.DoorSeekingWalk), so half the
    # episodes are collected by a walk that goes through it.
    "amia/Wall-v0": ["jepa.loss.idm=10", "collect.policy=doors"],
    # 96x96 frames seen at 32x32, like TwoRooms' 64x64 at downsample 2: the same cost per frame on a CPU.
    "amia/Maze-v0": ["jepa.encoder.downsample=3"],
}


def default_config(env_id: str) -> TrainConfig:
    """The training defaults for a world: ``TrainConfig()`` plus that world's preset overrides."""
    return apply_overrides(TrainConfig(), WORLD_PRESETS.get(env_id, []))


class RunError(ValueError):
    """A run directory that cannot be started or resumed as asked."""


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 5% of ``lr`` at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def split_episodes(episodes: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train / held-out episode indices: the last ``val_fraction`` of the file is held out."""
    n_val = max(1, int(round(episodes * val_fraction)))
    if episodes - n_val < 1:
        raise RunError(f"the dataset has {episodes} episode(s): too few to hold out {val_fraction:.0%} and still train")
    return np.arange(episodes - n_val), np.arange(episodes - n_val, episodes)


def load_run_config(run_dir: str | Path) -> tuple[dict, TrainConfig]:
    """The ``config.json`` of a run and its ``TrainConfig``."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise RunError(f"{run_dir}: no config.json; not a run directory (train one with `amia train --out {run_dir}`)")
    saved = json.loads(path.read_text())
    return saved, from_dict(TrainConfig, saved["train"])


def load_model(run_dir: str | Path, device: str = "cpu") -> tuple[JEPA, dict]:
    """The trained world model of a run (weights from its checkpoint) and its ``config.json``."""
    saved, cfg = load_run_config(run_dir)
    tensors, meta, _ = read_checkpoint(Path(run_dir) / "checkpoint.safetensors")
    model = JEPA(cfg.jepa, tuple(meta["obs_shape"]), meta["action_dim"])
    load_weights(model, tensors, Path(run_dir) / "checkpoint.safetensors")
    return model.to(device).eval(), saved


class StopFlag:
    """SIGINT / SIGTERM ask the loop to stop at the next step boundary (a second SIGINT stops at once)."""

    def __init__(self) -> None:
        self.set = False
        self._old: dict = {}

    def __enter__(self) -> "StopFlag":
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _wanted(env_id: str, cfg: TrainConfig, data: str | None) -> dict:
    """The ``config.json`` that a run with these settings has."""
    return {"env_id": env_id, "data": str(Path(data).resolve()) if data else None, "train": to_dict(cfg)}


def finished_metrics(env_id: str, out: str | Path, cfg: TrainConfig, data: str | None = None) -> dict | None:
    """``metrics.json`` of a run in ``out`` that finished with exactly these settings; ``None`` otherwise.

    Rerunning ``train`` on a finished run trains no further but recomputes the diagnostics; callers that only
    need the trained model (``amia train --levels 2``) skip that. ``None`` covers every other case (no run,
    other settings, unfinished), where ``train`` starts, refuses or resumes the run as usual.
    """
    out = Path(out)
    paths = [out / n for n in ("config.json", "checkpoint.safetensors", "metrics.json")]
    if not all(p.exists() for p in paths) or config_diff(json.loads(paths[0].read_text()), _wanted(env_id, cfg, data)):
        return None
    try:
        _, meta, _ = read_checkpoint(paths[1])
    except CheckpointError:
        return None
    return json.loads(paths[2].read_text()) if meta.get("step", 0) >= cfg.steps else None


def _prepare_run(env_id: str, out: Path, cfg: TrainConfig, data: str | None) -> None:
    """Write or check ``config.json``: a rerun must ask for the same run it resumes."""
    env_spec(env_id)
    wanted = _wanted(env_id, cfg, data)
    path = out / "config.json"
    if path.exists():
        saved = json.loads(path.read_text())
        diffs = config_diff(saved, wanted)
        if diffs:
            raise RunError(f"{out} holds a run started with other settings ({'; '.join(diffs[:5])}); "
                           "rerun with the same settings to resume, or choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(wanted, indent=2))


def _check_data(env_id: str, data_path: Path):
    """The ``DatasetInfo`` of a trajectory file; ``RunError`` if it is missing or from another env."""
    if not data_path.exists():
        raise RunError(f"--data {data_path}: no such file")
    info = read_info(data_path)
    if info.env_id != env_id:
        raise RunError(f"{data_path} was collected in {info.env_id!r}, but --env is {env_id!r}")
    return info


def halt(stop: StopFlag, stopping: bool, step: int, total: int, save, ckpt, *closing) -> dict | None:
    """End a training loop early when ``stopping`` (a signal, or ``stop_after`` in tests) and steps remain: save
    the checkpoint, close ``closing`` (progress bar, logger), then on a signal say how to resume and raise
    ``KeyboardInterrupt``, otherwise return ``{"stopped_at": step}``. ``None``: carry on."""
    if not stopping or step >= total:
        return None
    save()
    for c in closing:
        c.close()
    if stop.set:
        print(f"\ninterrupted at step {step}; checkpoint saved in {ckpt}. Rerun the same command to resume.")
        raise KeyboardInterrupt
    return {"stopped_at": step}


def config_diff(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in config_diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: was {a!r}, now {b!r}"]


def train(env_id: str, out: str | Path, cfg: TrainConfig | None = None, data: str | None = None,
          device: str = "cpu", progress: bool = True, stop_after: int | None = None) -> dict:
    """Train (or resume) a JEPA world model in ``out``; returns the final metrics (also in ``metrics.json``).

    ``stop_after`` stops the run as an interruption would, once that many steps are done (used by tests).
    """
    cfg = cfg or TrainConfig()
    out = Path(out)
    distributed = dist_utils.init_from_env(device)
    rank, world = dist_utils.rank(), dist_utils.world_size()
    if device.startswith("cuda") and distributed:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // local))
    data_path = Path(data) if data else out / "data.h5"
    if data:  # refuse a bad --data before _prepare_run binds the run directory to it in config.json
        env_spec(env_id)
        _check_data(env_id, data_path)
    if rank == 0:
        _prepare_run(env_id, out, cfg, data)
    if distributed:
        torch.distributed.barrier()
    if not data_path.exists():
        if rank == 0:
            collect(env_id, data_path, cfg.collect, progress=progress)
        if distributed:
            torch.distributed.barrier()
    info = _check_data(env_id, data_path)
    train_eps, val_eps = split_episodes(info.episodes, cfg.val_fraction)
    sampler = WindowSampler(data_path, cfg.window, cfg.batch_size, train_eps, cfg.chunk_frames, seed=cfg.seed)
    diag_steps = max(cfg.window, 16)
    probe_sampler = WindowSampler(data_path, diag_steps, 256, train_eps, cfg.chunk_frames, seed=cfg.seed + 1)
    val_sampler = WindowSampler(data_path, diag_steps, 256, val_eps, cfg.chunk_frames, seed=cfg.seed + 2)

    torch.manual_seed(cfg.seed)
    dev = torch.device(device)
    model = JEPA(cfg.jepa, info.obs_shape, info.action_dim).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt = out / "checkpoint.safetensors"
    step, elapsed = 0, 0.0
    if ckpt.exists():
        tensors, meta, groups = read_checkpoint(ckpt)
        load_weights(model, tensors, ckpt)
        load_optimizer(opt, tensors, groups)
        step, elapsed = meta["step"], meta["train_seconds"]
    ddp = torch.nn.parallel.DistributedDataParallel(model) if distributed else model

    def save() -> None:
        if rank == 0:
            save_checkpoint(ckpt, model, opt, {"step": step, "train_seconds": elapsed, "env_id": env_id,
                                               "obs_shape": list(info.obs_shape), "action_dim": info.action_dim})

    logger = Logger(out, enabled=rank == 0)
    bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", disable=not progress or rank != 0)
    sums: dict[str, float] = {}
    interval_start, interval_steps = time.perf_counter(), 0
    with StopFlag() as stop:
        while step < cfg.steps:
            t0 = time.perf_counter()
            batch = sampler.batch(step, rank)
            obs = torch.from_numpy(batch["obs"]).to(dev)
            act = torch.from_numpy(batch["action"]).to(dev)
            for g in opt.param_groups:
                g["lr"] = learning_rate(cfg, step)
            terms = ddp(obs, act, seed=cfg.seed * 1_000_003 + step)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            elapsed += time.perf_counter() - t0
            interval_steps += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if step % cfg.log_every == 0 or step == cfg.steps:
                secs = time.perf_counter() - interval_start
                row = {k: v / interval_steps for k, v in sums.items()}
                row.update(lr=learning_rate(cfg, step - 1),
                           samples_per_s=interval_steps * cfg.batch_size * world * (cfg.window + 1) / secs)
                logger.log(step, "train", row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", pred=f"{row['pred']:.4f}")
                sums, interval_start, interval_steps = {}, time.perf_counter(), 0
            if cfg.val_every and step % cfg.val_every == 0 and step < cfg.steps and rank == 0:
                logger.log(step, "val", _scalars(representation_report(
                    model, probe_sampler, val_sampler, dev, val_windows=cfg.diag_windows)))
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save()
            bar.update(1)
            stopping = stop.set or (stop_after is not None and step >= stop_after)
            if distributed:
                flag = torch.tensor([float(stopping)], device=dev)
                torch.distributed.all_reduce(flag)
                stopping = bool(flag.item())
            if (halted := halt(stop, stopping, step, cfg.steps, save, ckpt, bar, logger)) is not None:
                return halted
    bar.close()
    metrics = {}
    if rank == 0:
        report = representation_report(model, probe_sampler, val_sampler, dev, val_windows=cfg.diag_windows)
        logger.log(step, "final", _scalars(report))
        metrics = {"env_id": env_id, "steps": step, "train_seconds": round(elapsed, 1),
                   "samples_per_s": round(step * cfg.batch_size * world * (cfg.window + 1) / max(elapsed, 1e-9), 1),
                   "world_size": world, "device": str(dev), "seed": cfg.seed, "git_rev": git_revision(),
                   "machine": machine(), **report}
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    logger.close()
    return metrics


def _scalars(report: dict) -> dict:
    return {k: v for k, v in report.items() if isinstance(v, (int, float))}


class Logger:
    """One JSON line per event in ``log.jsonl`` and the same scalars in TensorBoard (``tb/``)."""

    def __init__(self, out: Path, enabled: bool):
        self.enabled, self.out, self.tb = enabled, out, None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"))
            except ImportError:
                self.tb = None

    def log(self, step: int, kind: str, values: dict) -> None:
        if not self.enabled:
            return
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "kind": kind, "time": time.time(), **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


__all__ = ["RunError", "TrainConfig", "WORLD_PRESETS", "default_config", "CheckpointError", "Logger", "StopFlag", "config_diff", "halt",
           "finished_metrics", "learning_rate", "load_model", "load_run_config", "train"]
