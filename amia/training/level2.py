"""Training level 2 of the H-JEPA (Sec. 4.6; the model is ``amia.models.level2``) on a frozen, trained level 1.

**Level by level, not jointly.** Level-2 targets are level-1 states: training both at once would let level 2
move its own targets, and the cheapest way to predict them far ahead is to make them constant, which pulls
level 1 toward collapse. A frozen level 1 gives level 2 fixed targets, keeps level 1 exactly the model that
flat Mode-2 plans with, and makes level 2 cheap on a CPU: every frame of the dataset is encoded once
(``amia.data.encode``), so a level-2 step never touches a pixel.

Files (in the level-1 run directory): ``level2.safetensors`` (weights, optimizer state, step; an interrupted
run resumes) and ``level2.json`` (config, final losses, seconds, git revision, the horizon report).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from amia.data.dataset import split_episodes
from amia.data.encode import EncodedTrajectories, encode_dataset, window_starts
from amia.infra.config import to_dict
from amia.infra.host import set_threads
from amia.infra.provenance import git_revision
from amia.infra.run_dir import LEVEL2, LEVEL2_SUMMARY, data_file, finished_level1, load_level2, weights_fingerprint
from amia.models.jepa import JEPA
from amia.models.level2 import HJEPAConfig, Level2
from amia.models.probe import LinearProbe, r2_score
from amia.training.loop import TrainingLoop, warmup_cosine, write_summary


def train_level2(run_dir: str | Path, cfg: HJEPAConfig | None = None, device: str = "cpu", progress: bool = True,
                 stop_after: int | None = None) -> dict:
    """Train (or resume, or just read back) level 2 on the frozen level 1 of ``run_dir``; returns ``level2.json``.

    Batches and action noise depend only on ``(seed, step)``, so an interrupted and resumed run ends with the
    same weights as an uninterrupted one. ``stop_after`` stops as an interruption would (used by tests).
    """
    cfg, run_dir, dev = cfg or HJEPAConfig(), Path(run_dir), torch.device(device)
    set_threads(cfg.threads)
    model1, saved = finished_level1(run_dir, device)
    fingerprint = weights_fingerprint(model1)
    torch.manual_seed(cfg.seed)
    level2 = Level2(cfg, model1.cfg.encoder.dim, model1.action_dim).to(dev)
    opt = torch.optim.AdamW(level2.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loop = TrainingLoop("level2", run_dir / LEVEL2, level2, opt, cfg.steps,
                        {"config": identity(cfg), "level1": fingerprint, "level1_dim": level2.level1_dim,
                         "level1_action_dim": level2.level1_action_dim},
                        run_dir, cfg.log_every, cfg.checkpoint_every, progress)
    loop.resume()
    if loop.finished and (run_dir / LEVEL2_SUMMARY).exists():
        return json.loads((run_dir / LEVEL2_SUMMARY).read_text())
    cache = encode_dataset(model1, data_file(run_dir, saved), dev, progress=progress)
    train_eps, val_eps = split_episodes(cache.episodes, saved["train"]["val_fraction"])
    starts = window_starts(cache.offsets, train_eps, cfg.window)

    def loss(step: int) -> dict:
        rng = np.random.default_rng([cfg.seed, step, 23])
        batch = cache.windows(starts[rng.integers(0, starts.size, cfg.batch_size)], cfg.window)
        return level2(batch["states"].to(dev), batch["actions"].to(dev), seed=cfg.seed * 1_000_003 + step)

    level2.train()
    halted = loop.run(loss, warmup_cosine(cfg.lr, cfg.warmup, cfg.steps), cfg.grad_clip, stop_after=stop_after)
    if halted is not None:
        return halted
    level2.eval()
    report = (horizon_report(model1, level2, cache, train_eps, val_eps, cfg.report_steps, cfg.report_windows,
                             seed=cfg.seed) if cfg.report_steps else None)
    return write_summary(run_dir / LEVEL2_SUMMARY, {
        "run": str(run_dir), "steps": loop.step, "seconds": round(loop.seconds, 1), "final_losses": loop.last,
        "config": to_dict(cfg), "level1": fingerprint, "git_rev": git_revision(), "horizon_report": report})


def identity(cfg: HJEPAConfig) -> dict:
    """The settings a level-2 checkpoint must match to resume: ``prior`` only where it means something (latent
    abstract actions), so that a level 2 with encoded actions saved before it existed still resumes."""
    saved = to_dict(cfg)
    if cfg.abstract != "latent":
        saved.pop("prior")
    return saved


@torch.no_grad()
def horizon_report(model1: JEPA, level2: Level2, cache: EncodedTrajectories, train_eps: np.ndarray, val_eps: np.ndarray,
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
    """``horizon_report`` for the trained levels of a run, on its held-out episodes."""
    model1, saved = finished_level1(run_dir, device)
    level2, _ = load_level2(run_dir, device, level1=model1)
    cache = encode_dataset(model1, data_file(run_dir, saved), device)
    train_eps, val_eps = split_episodes(cache.episodes, saved["train"]["val_fraction"])
    return horizon_report(model1, level2, cache, train_eps, val_eps, horizon_steps, windows, seed=seed)


__all__ = ["horizon_report", "level2_horizon_report", "train_level2"]
