"""H-JEPA (Sec. 4.6, Fig. 15): a second JEPA level on the states of a frozen, trained level 1.

Level 2 sees the world every ``k = stride`` level-1 steps. Its state ``s2 = Enc2(pool(s1 block))`` is an MLP
of a temporal pool of level-1 states; its action ``a2 = ActEnc(a[t..t+k-1])`` is a learned encoding of the k
low-level actions of a block; its predictor ``s2[j+1] = Pred2(s2[j], a2[j])`` is the level-1 residual MLP
(``amia.world_model.Predictor``). Training rolls ``Pred2`` open-loop ``horizon`` (M) level-2 steps, i.e.
``M * k`` level-1 steps, and compares with the encoded targets; a VICReg variance hinge and covariance penalty
on level-2 states (Sec. 4.5.1) keep them from collapsing.

**Trained level by level, not jointly.** Level-2 targets are level-1 states: training both at once would let
level 2 move its own targets, and the cheapest way to predict them far ahead is to make them constant, which
pulls level 1 toward collapse. A frozen level 1 gives level 2 fixed targets, keeps level 1 exactly the model
that flat Mode-2 plans with, and makes level 2 cheap on a CPU: the level-1 states of the whole dataset
(``N x D1`` floats) are encoded once and kept in memory, so a level-2 step never touches a pixel.

**Pooling** (``pool``): ``first`` (default) takes the level-1 state at each block boundary (a stride), so
``s2 = Enc2(s1[t])`` needs no history and a planned ``s2`` is a subgoal for one level-1 state, ``k`` steps
ahead (Sec. 4.7). ``mean`` averages the k level-1 states that *end* at each boundary (a causal, trailing
pool: the next level-2 state depends only on the current one and the block's actions), so it needs k-1
frames of history before time 0.

**Abstract actions as a regularised latent** (Sec. 4.5): low dimension (``action_dim``, default 4, from the
``k * 2`` numbers of a block), a ``tanh`` that bounds them to [-1, 1] (Mode-2's box-bounded planners plan them
with bound 1), an L2 penalty ``act_l2 * mean(a2^2)`` and Gaussian noise (``act_noise``) added to them before
the predictor during training, so the predictor is smooth around the encoded actions and planned ones
between them stay meaningful.

The data pipeline (stride blocks, action blocks, the cache of level-1 states) is in ``amia.data.blocks``.

Files (in the level-1 run directory): ``level2.safetensors`` (weights, optimizer state, step; rewritten
atomically every ``checkpoint_every`` steps, so an interrupted run resumes) and ``level2.json`` (config,
final losses, seconds, git revision, the 64-step horizon report).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from amia import regularizers as R
from amia.checkpoint import CheckpointError, atomic_write_text, load_optimizer, load_weights, read_checkpoint, save_checkpoint
from amia.config import from_dict, to_dict
from amia.data.blocks import POOLS, Level1Cache, action_blocks, encode_dataset, pool_span, stride_blocks, window_starts
from amia.jepa import JEPA
from amia.probe import LinearProbe, r2_score
from amia.provenance import git_revision
from amia.train import (Logger, RunError, StopFlag, TrainConfig, config_diff, halt, learning_rate, load_model,
                        load_run_config, split_episodes)
from amia.world_model import Predictor, PredictorConfig, mlp

LEVEL2_FILE, SUMMARY_FILE = "level2.safetensors", "level2.json"


@dataclass
class HJEPAConfig:
    """Level 2 of the H-JEPA: architecture, loss weights and optimiser (``level2.KEY=value`` on the command line).

    ``stride`` k: level-1 steps per level-2 step; ``horizon`` M: level-2 steps per training window (M * k
    level-1 steps); ``pool``: ``first`` or ``mean`` (module docstring). Loss: ``pred`` (open-loop prediction),
    ``var`` / ``cov`` (VICReg on level-2 states, hinge at ``std_target``), ``act_l2`` (L2 penalty on abstract
    actions); ``act_noise``: std of the noise added to abstract actions during training. ``report_steps``: the
    level-1 horizon of the prediction report written at the end (a multiple of ``stride``; 0: none).
    """

    stride: int = 8
    horizon: int = 8
    pool: str = "first"
    dim: int = 32
    action_dim: int = 4
    encoder_hidden: int = 256
    action_hidden: int = 128
    predictor: PredictorConfig = field(default_factory=lambda: PredictorConfig(hidden=256, layers=2))
    pred: float = 1.0
    var: float = 1.0
    cov: float = 0.04
    std_target: float = 1.0
    act_l2: float = 0.01
    act_noise: float = 0.05
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    log_every: int = 50
    checkpoint_every: int = 500
    report_steps: int = 64
    report_windows: int = 512
    seed: int = 0
    threads: int = 0

    def __post_init__(self):
        if self.pool not in POOLS:
            raise ValueError(f"level2.pool must be one of {POOLS}, got {self.pool!r}")
        for name in ("stride", "horizon", "dim", "action_dim", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"level2.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2 and self.var + self.cov > 0:
            raise ValueError("level2.batch_size must be >= 2 for the VICReg batch statistics")

    @property
    def span(self) -> int:
        """Level-1 frames pooled into one level-2 state: 1 (``first``) or k (``mean``)."""
        return pool_span(self.stride, self.pool)

    @property
    def window(self) -> int:
        """Level-1 frames of one training window: ``M * k + span`` (``M * k`` actions after time 0)."""
        return self.horizon * self.stride + self.span


# ------------------------------------------------------------------------------------------ the level-2 model


class ActionEncoder(nn.Module):
    """Abstract action ``a2 = tanh(MLP(a[t..t+k-1]))``: the k actions of a block ``(..., k*A)`` -> ``(..., action_dim)``."""

    def __init__(self, in_dim: int, hidden: int, action_dim: int):
        super().__init__()
        self.in_dim, self.action_dim = in_dim, action_dim
        self.net = mlp([in_dim, hidden, action_dim])

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        if blocks.shape[-1] != self.in_dim:
            raise ValueError(f"action blocks should end with size {self.in_dim} (k * action size), got {tuple(blocks.shape)}")
        return torch.tanh(self.net(blocks))


class Level2(nn.Module):
    """JEPA-2 of the H-JEPA (Sec. 4.6): ``Enc2``, the abstract-action encoder and ``Pred2``, plus its loss.

    ``encode(blocks (..., span, D1)) -> (..., dim)``; ``encode_state(s1 (..., D1))`` for ``pool="first"``;
    ``encode_actions(blocks (..., k*A)) -> (..., action_dim)`` in [-1, 1]; ``rollout(s2_0 (B, dim),
    a2 (B, T, action_dim)) -> (B, T, dim)``.
    """

    def __init__(self, cfg: HJEPAConfig, level1_dim: int, level1_action_dim: int):
        super().__init__()
        self.cfg, self.level1_dim, self.level1_action_dim = cfg, level1_dim, level1_action_dim
        self.encoder = mlp([level1_dim, cfg.encoder_hidden, cfg.dim])
        self.action_encoder = ActionEncoder(cfg.stride * level1_action_dim, cfg.action_hidden, cfg.action_dim)
        self.predictor = Predictor(cfg.predictor, cfg.dim, cfg.action_dim)

    @property
    def dim(self) -> int:
        return self.cfg.dim

    @property
    def action_dim(self) -> int:
        return self.cfg.action_dim

    def encode(self, blocks: torch.Tensor) -> torch.Tensor:
        """Level-2 states of pooled blocks of level-1 states: ``(..., span, D1) -> (..., dim)``."""
        if blocks.shape[-1] != self.level1_dim or blocks.dim() < 2:
            raise ValueError(f"blocks should have shape (..., span, {self.level1_dim}), got {tuple(blocks.shape)}")
        return self.encoder(blocks.mean(dim=-2))

    def encode_state(self, s1: torch.Tensor) -> torch.Tensor:
        """``Enc2(s1)`` of single level-1 states ``(..., D1)``: the level-2 state when ``pool="first"``."""
        return self.encode(s1.unsqueeze(-2))

    def encode_actions(self, blocks: torch.Tensor) -> torch.Tensor:
        return self.action_encoder(blocks)

    def rollout(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.predictor.rollout(s0, actions)

    def encode_window(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Level-2 states ``(B, M+1, dim)`` and abstract actions ``(B, M, action_dim)`` of a level-1 window.

        ``states (B, M*k + span, D1)``, ``actions (B, M*k + span - 1, A)``; the first ``span - 1`` actions
        (inside the history of the first ``mean`` block) are not used.
        """
        cfg = self.cfg
        if actions.shape[:2] != (states.shape[0], states.shape[1] - 1):
            raise ValueError(f"actions should have shape ({states.shape[0]}, {states.shape[1] - 1}, A) for states "
                             f"{tuple(states.shape)}, got {tuple(actions.shape)}")
        s2 = self.encode(stride_blocks(states, cfg.stride, cfg.pool))
        a2 = self.encode_actions(action_blocks(actions[:, cfg.span - 1:], cfg.stride))
        return s2, a2

    def forward(self, states: torch.Tensor, actions: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
        """Loss terms for a batch of level-1 windows (``encode_window``); ``loss`` is their weighted sum."""
        c = self.cfg
        s2, a2 = self.encode_window(states, actions)
        if s2.shape[1] < 2:
            raise ValueError(f"a training window needs at least 2 level-2 steps, got states {tuple(states.shape)}")
        a_in = a2
        if self.training and c.act_noise:
            g = torch.Generator().manual_seed(seed)
            a_in = a2 + c.act_noise * torch.randn(a2.shape, generator=g).to(a2.device)
        pred = self.predictor.rollout(s2[:, 0], a_in)
        flat = s2.flatten(0, 1)
        terms = {"pred": (pred - s2[:, 1:]).pow(2).mean(), "var": R.variance_hinge(flat, c.std_target),
                 "cov": R.covariance_penalty(flat), "act": a2.pow(2).mean()}
        weights = {"pred": c.pred, "var": c.var, "cov": c.cov, "act": c.act_l2}
        terms["loss"] = sum(weights[k] * terms[k] for k in weights)
        return terms


# ------------------------------------------------------------------------------------------ train, save, load


def weights_fingerprint(model: nn.Module) -> str:
    """A short hash of a model's weights: level 2 is only valid on the level 1 it was trained on (and the
    level-2 critic on its level 2)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _frozen_level1(run_dir: Path, device: str) -> tuple[JEPA, dict, TrainConfig]:
    """The finished level-1 model of a run (frozen), its ``config.json`` and ``TrainConfig``."""
    saved, train_cfg = load_run_config(run_dir)
    _, meta, _ = read_checkpoint(run_dir / "checkpoint.safetensors")
    if meta.get("step", 0) < train_cfg.steps:
        raise RunError(f"{run_dir}: level 1 is at step {meta.get('step')} of {train_cfg.steps}; finish it first "
                       f"(`amia train --out {run_dir}` resumes it)")
    model, _ = load_model(run_dir, device)
    model.requires_grad_(False)
    return model, saved, train_cfg


def train_level2(run_dir: str | Path, cfg: HJEPAConfig | None = None, device: str = "cpu", progress: bool = True,
                 stop_after: int | None = None) -> dict:
    """Train (or resume, or just read back) level 2 on the frozen level 1 of ``run_dir``; returns ``level2.json``.

    Batches and action noise depend only on ``(seed, step)``, so an interrupted and resumed run ends with the
    same weights as an uninterrupted one. ``stop_after`` stops as an interruption would (used by tests).
    """
    cfg = cfg or HJEPAConfig()
    run_dir = Path(run_dir)
    summary_path, ckpt = run_dir / SUMMARY_FILE, run_dir / LEVEL2_FILE
    torch.set_num_threads(cfg.threads or max(1, os.cpu_count() or 1))
    model1, saved, train_cfg = _frozen_level1(run_dir, device)
    fingerprint = weights_fingerprint(model1)
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    level2 = Level2(cfg, model1.cfg.encoder.dim, model1.action_dim).to(dev)
    opt = torch.optim.AdamW(level2.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, elapsed = 0, 0.0
    if ckpt.exists():
        tensors, meta, groups = read_checkpoint(ckpt)
        diffs = config_diff(meta.get("config"), to_dict(cfg))
        if diffs:
            raise RunError(f"{ckpt} was trained with other level-2 settings ({'; '.join(diffs[:5])}); rerun with "
                           "the same settings to resume, or delete it to start again")
        if meta.get("level1") != fingerprint:
            raise RunError(f"{ckpt} was trained on another level-1 model; delete it to train level 2 again")
        load_weights(level2, tensors, ckpt)
        load_optimizer(opt, tensors, groups)
        step, elapsed = meta["step"], meta["seconds"]
        if step >= cfg.steps and summary_path.exists():
            return json.loads(summary_path.read_text())

    data_path = saved.get("data") or str(run_dir / "data.h5")
    cache = encode_dataset(model1, data_path, dev, progress=progress)
    train_eps, val_eps = split_episodes(len(cache.offsets) - 1, train_cfg.val_fraction)
    starts = window_starts(cache.offsets, train_eps, cfg.window)

    def save() -> None:
        save_checkpoint(ckpt, level2, opt, {"step": step, "seconds": elapsed, "config": to_dict(cfg),
                                            "level1": fingerprint, "level1_dim": level2.level1_dim,
                                            "level1_action_dim": level2.level1_action_dim})

    logger = Logger(run_dir, enabled=True)
    bar = tqdm(total=cfg.steps, initial=step, desc="train level 2", unit="step", disable=not progress)
    sums: dict[str, float] = {}
    last: dict[str, float] = {}
    interval = 0
    level2.train()
    with StopFlag() as stop:
        while step < cfg.steps:
            t0 = time.perf_counter()
            rng = np.random.default_rng([cfg.seed, step, 23])
            batch = cache.windows(starts[rng.integers(0, starts.size, cfg.batch_size)], cfg.window)
            for g in opt.param_groups:
                g["lr"] = learning_rate(cfg, step)
            terms = level2(batch["states"].to(dev), batch["actions"].to(dev), seed=cfg.seed * 1_000_003 + step)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(level2.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            elapsed += time.perf_counter() - t0
            interval += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if step % cfg.log_every == 0 or step == cfg.steps:
                last = {k: v / interval for k, v in sums.items()}
                logger.log(step, "level2", {**last, "lr": learning_rate(cfg, step - 1)})
                bar.set_postfix(loss=f"{last['loss']:.4f}", pred=f"{last['pred']:.4f}")
                sums, interval = {}, 0
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save()
            bar.update(1)
            stopping = stop.set or (stop_after is not None and step >= stop_after)
            if (halted := halt(stop, stopping, step, cfg.steps, save, ckpt, bar, logger)) is not None:
                return halted
    bar.close()
    logger.close()
    level2.eval()
    report = (horizon_report(model1, level2, cache, train_eps, val_eps, cfg.report_steps, cfg.report_windows,
                             seed=cfg.seed) if cfg.report_steps else None)
    summary = {"run": str(run_dir), "steps": step, "seconds": round(elapsed, 1), "final_losses": last,
               "config": to_dict(cfg), "level1": fingerprint, "git_rev": git_revision(), "horizon_report": report}
    atomic_write_text(summary_path, json.dumps(summary, indent=2))
    return summary


def load_level2(run_dir: str | Path, device: str = "cpu", level1: JEPA | None = None) -> tuple[Level2, dict]:
    """The trained level 2 of a run (eval mode) and its checkpoint meta.

    ``CheckpointError`` if it is missing, unfinished, made for another level-1 state size, or (when the level-1
    model is given) trained on other level-1 weights.
    """
    run_dir = Path(run_dir)
    path = run_dir / LEVEL2_FILE
    if not path.exists():
        raise CheckpointError(f"{path}: no level-2 model; train one with `amia train --levels 2 --out {run_dir}`")
    tensors, meta, _ = read_checkpoint(path)
    cfg = from_dict(HJEPAConfig, meta["config"])
    if meta["step"] < cfg.steps:
        raise CheckpointError(f"{path}: level 2 is at step {meta['step']} of {cfg.steps}; rerun "
                              f"`amia train --levels 2 --out {run_dir}` to finish it")
    _, train_cfg = load_run_config(run_dir)
    if meta["level1_dim"] != train_cfg.jepa.encoder.dim:
        raise CheckpointError(f"{path}: level 2 was trained on {meta['level1_dim']}-D level-1 states, but the run's "
                              f"level 1 gives {train_cfg.jepa.encoder.dim}-D states")
    if level1 is not None and weights_fingerprint(level1) != meta["level1"]:
        raise CheckpointError(f"{path}: level 2 was trained on other level-1 weights than the given model's")
    level2 = Level2(cfg, meta["level1_dim"], meta["level1_action_dim"])
    load_weights(level2, tensors, path)
    return level2.to(device).eval(), meta


# ------------------------------------------------------------------------------------------ the horizon report


@torch.no_grad()
def horizon_report(model1: JEPA, level2: Level2, cache: Level1Cache, train_eps: np.ndarray, val_eps: np.ndarray,
                   horizon_steps: int = 64, windows: int = 512, probe_frames: int = 4096, seed: int = 0) -> dict:
    """Position error (px) of open-loop predictions ``horizon_steps`` level-1 steps ahead, at both levels.

    Linear probes to the agent's (x, y) are fitted on training frames, from level-1 states and from level-2
    states. On held-out windows (``val_eps``): (a) level 2 rolled ``horizon_steps / k`` steps from the encoded
    first block with the encoded action blocks, (b) level 1 rolled ``horizon_steps`` steps with the true
    actions; each read by its own probe at every level-2 boundary. ``*_probe_error_px`` (and ``*_probe_r2``)
    are the probes' errors on encoded, not predicted, held-out states at the horizon (at all boundaries): the
    floor of each level; ``copy_error_px`` is the do-nothing baseline (the start position).
    """
    cfg, dev = level2.cfg, next(level2.parameters()).device
    if horizon_steps % cfg.stride:
        raise ValueError(f"horizon_steps ({horizon_steps}) should be a multiple of level2.stride ({cfg.stride})")
    span, m = cfg.span, horizon_steps // cfg.stride
    rng = np.random.default_rng([seed, 31])
    fit_starts = window_starts(cache.offsets, train_eps, span)
    fit = cache.windows(rng.choice(fit_starts, min(probe_frames, fit_starts.size), replace=False), span)
    s1_fit = fit["states"][:, -1].to(dev)
    s2_fit = level2.encode(fit["states"].to(dev))
    y_fit = fit["position"][:, -1].double()
    probe1, probe2 = LinearProbe.fit(s1_fit.cpu(), y_fit), LinearProbe.fit(s2_fit.cpu(), y_fit)

    val_starts = window_starts(cache.offsets, val_eps, m * cfg.stride + span)
    w = cache.windows(rng.choice(val_starts, min(windows, val_starts.size), replace=False), m * cfg.stride + span)
    states, actions = w["states"].to(dev), w["actions"].to(dev)
    s2, a2 = level2.encode_window(states, actions)
    pred2 = level2.rollout(s2[:, 0], a2).cpu()  # (B, m, dim)
    pred1 = model1.predictor.rollout(states[:, span - 1], actions[:, span - 1:]).cpu()  # (B, m*k, D1)
    at = span - 1 + cfg.stride * torch.arange(1, m + 1)  # frames of the level-2 boundaries 1..m
    target = w["position"][:, at].double()  # (B, m, 2)

    def err(p: torch.Tensor) -> list[float]:
        return [round(float(v), 3) for v in (p.double() - target).norm(dim=-1).mean(0)]

    by2, by1 = err(probe2(pred2)), err(probe1(pred1[:, cfg.stride - 1::cfg.stride]))
    return {"horizon_steps": horizon_steps, "stride": cfg.stride, "level2_steps": m, "windows": int(states.shape[0]),
            "level2_pred_error_px": by2[-1], "level1_pred_error_px": by1[-1],
            "copy_error_px": round(float((w["position"][:, span - 1].double() - target[:, -1]).norm(dim=-1).mean()), 3),
            "level2_probe_error_px": err(probe2(s2[:, 1:].cpu()))[-1],
            "level1_probe_error_px": err(probe1(states[:, at].cpu()))[-1],
            "level2_probe_r2": r2_score(probe2(s2[:, 1:].cpu()).flatten(0, 1), target.flatten(0, 1)),
            "level1_probe_r2": r2_score(probe1(states[:, at].cpu()).flatten(0, 1), target.flatten(0, 1)),
            "level2_error_px_by_step": by2, "level1_error_px_by_step": by1,
            "steps": [int(cfg.stride * j) for j in range(1, m + 1)]}


def level2_horizon_report(run_dir: str | Path, horizon_steps: int = 64, windows: int = 512, device: str = "cpu",
                          seed: int = 0) -> dict:
    """``horizon_report`` for the trained levels of a run, on its held-out episodes (issue #5, acceptance 3)."""
    run_dir = Path(run_dir)
    level2, _ = load_level2(run_dir, device)
    model1, saved, train_cfg = _frozen_level1(run_dir, device)
    cache = encode_dataset(model1, saved.get("data") or str(run_dir / "data.h5"), device)
    train_eps, val_eps = split_episodes(len(cache.offsets) - 1, train_cfg.val_fraction)
    return horizon_report(model1, level2, cache, train_eps, val_eps, horizon_steps, windows, seed=seed)


__all__ = ["HJEPAConfig", "Level1Cache", "Level2", "ActionEncoder", "LEVEL2_FILE", "SUMMARY_FILE", "action_blocks",
           "encode_dataset", "horizon_report", "weights_fingerprint", "level2_horizon_report", "load_level2",
           "pool_span", "stride_blocks", "train_level2", "window_starts"]
