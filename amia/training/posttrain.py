"""Post-training (Sec. 4.5): give a JEPA trained on frames alone its actions, from a few labelled episodes.

The pretrained predictor ``Pred(s, z)`` already knows how the world moves, given the latent action ``z`` that
the frames showed. What it lacks is which real action gives which ``z`` in which state. Post-training learns that
map, ``z = tanh(ActionMap([s, a]))`` (``PredictorConfig.action_code``), on a labelled trajectory file, with the
encoder and the predictor frozen: open-loop prediction of the labelled windows through the map, plus a term that
matches the map's codes to the latent actions the pretrained model infers from the same frames. The map is the
only part trained, so a few episodes suffice, and the result is an ordinary action-conditioned run (config,
checkpoint, metrics) that ``amia eval``, ``distill`` and ``train --levels 2`` accept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from amia.data.dataset import split_episodes
from amia.data.encode import encode_dataset, window_starts
from amia.eval.diagnostics import representation_report
from amia.infra.checkpoint import atomic_write_text
from amia.infra.config import from_dict, to_dict
from amia.infra.host import set_threads
from amia.infra.provenance import git_revision, machine
from amia.infra.run_dir import CHECKPOINT, METRICS, RunError, load_action_free, weights_fingerprint
from amia.infra.validate import at_least, check_device, positive, within
from amia.models.jepa import JEPA
from amia.training.loop import TrainingLoop, warmup_cosine
from amia.training.world_model import (
    PretrainConfig,
    TrainConfig,
    action_box,
    check_data,
    prepare_run,
    settings,
    window_samplers,
)


@dataclass
class PosttrainConfig:
    """``steps`` Adam steps at ``lr`` (warm-up, cosine) on ``batch_size`` windows of ``window`` actions from the
    labelled file's training episodes (the last ``val_fraction`` held out for the diagnostics); ``match`` weighs
    the codes' distance to the pretrained model's latent actions; ``action_hidden`` is the map's width;
    ``tune_predictor`` trains the predictor's net along with the map (the encoder stays frozen); ``action_map``
    false keeps only the pretrained encoder and trains a new action-conditioned predictor on its frozen states."""

    steps: int = 2000
    batch_size: int = 64
    window: int = 16
    lr: float = 1e-3
    warmup: int = 100
    grad_clip: float = 1.0
    match: float = 1.0
    tune_predictor: bool = False
    action_map: bool = True
    action_hidden: int = 128
    val_fraction: float = 0.1
    log_every: int = 50
    checkpoint_every: int = 500
    diag_windows: int = 512
    seed: int = 0
    threads: int = 0

    def __post_init__(self):
        at_least(self, 1, "steps", "window", "action_hidden", "log_every", "checkpoint_every", "diag_windows")
        at_least(self, 2, "batch_size")
        at_least(self, 0, "warmup", "grad_clip", "match", "seed", "threads")
        positive(self, "lr")
        within(self, "val_fraction", 0, 1, open_low=True, open_high=True)


def run_config(pretrained: PretrainConfig, cfg: PosttrainConfig) -> TrainConfig:
    """The post-trained run's ``TrainConfig``: the pretrained model's architecture with an action map of the latent
    action's size in front of the predictor (no inverse-dynamics head), and post-training's schedule."""
    jepa = pretrained.jepa
    code = pretrained.latent_action.dim if cfg.action_map else 0
    jepa = replace(jepa, loss=replace(jepa.loss, idm=0.0),
                   predictor=replace(jepa.predictor, action_code=code, action_hidden=cfg.action_hidden))
    return TrainConfig(jepa=jepa, steps=cfg.steps, batch_size=cfg.batch_size, window=cfg.window, lr=cfg.lr,
                       warmup=cfg.warmup, grad_clip=cfg.grad_clip, val_fraction=cfg.val_fraction,
                       log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every, diag_windows=cfg.diag_windows,
                       seed=cfg.seed, threads=cfg.threads)


def posttrain(pretrained_run: str | Path, data: str | Path, out: str | Path, cfg: PosttrainConfig | None = None,
              device: str = "cpu", progress: bool = True, stop_after: int | None = None) -> dict:
    """Post-train the run ``pretrained_run`` (``amia pretrain``) on the labelled trajectory file ``data`` into the
    new run ``out`` (rerun to resume); returns its metrics (also in ``metrics.json``)."""
    cfg, out = cfg or PosttrainConfig(), Path(out)
    check_device(device)
    dev = torch.device(device)
    set_threads(cfg.threads)
    video, saved = load_action_free(pretrained_run, device)
    info = check_data(None, Path(data), frames=True)
    if info.action_dim == 0:
        raise RunError(f"--data {data}: the file has no actions; post-training needs labelled episodes")
    if tuple(info.obs_shape) != tuple(video.obs_shape):
        raise RunError(f"--data {data}: frames (channels, height, width) are {info.obs_shape}, but {pretrained_run} "
                       f"was pretrained on {video.obs_shape}")
    train_cfg = run_config(from_dict(PretrainConfig, saved["train"]), cfg)
    source = {"posttrain": {"from": str(Path(pretrained_run).resolve()), "pretrained": weights_fingerprint(video),
                            "config": to_dict(cfg)}}
    prepare_run(info.env_id, out, train_cfg, str(data), source)

    box = action_box(info)
    model = _model(video, train_cfg, info, box, cfg).to(dev)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    identity = {"env_id": info.env_id, "obs_shape": list(info.obs_shape), "action_dim": info.action_dim, **(box or {}),
                "config": settings(train_cfg), "pretrained": source["posttrain"]["pretrained"]}
    loop = TrainingLoop("posttrain", out / CHECKPOINT, model, opt, cfg.steps, identity, out, cfg.log_every,
                        cfg.checkpoint_every, progress)
    loop.resume()

    encoded = encode_dataset(model, info.path, dev, progress=progress)
    with torch.no_grad():
        targets = video.latent_actions(encoded.states.to(dev)[None])[0].cpu()  # (N-1, k); crosses episodes at ends
    train_eps, _ = split_episodes(info.episodes, cfg.val_fraction)
    frames = min(cfg.window + 1, int(np.diff(info.episode_offsets)[train_eps].max()))
    starts = window_starts(info.episode_offsets, train_eps, frames)

    loss = _loss(model, encoded, targets, starts, frames, cfg, dev)
    halted = loop.run(loss, warmup_cosine(cfg.lr, cfg.warmup, cfg.steps), cfg.grad_clip, stop_after=stop_after)
    if halted is not None:
        return halted
    _, (probe_sampler, val_sampler) = window_samplers(info, train_cfg)
    report = representation_report(model, probe_sampler, val_sampler, dev, val_windows=cfg.diag_windows,
                                   state_names=info.state_names)
    metrics = {"env_id": info.env_id, **(box or {}), "steps": loop.step, "train_seconds": round(loop.seconds, 1),
               "labelled_episodes": info.episodes, "labelled_frames": info.frames, **source, "seed": cfg.seed,
               "git_rev": git_revision(), "machine": machine(), **report}
    atomic_write_text(out / METRICS, json.dumps(metrics, indent=2))
    return metrics


def _model(video, train_cfg: TrainConfig, info, box: dict | None, cfg: PosttrainConfig) -> JEPA:
    """The post-trained run's model, seeded: the pretrained weights it keeps (all but ``Infer``; only the encoder
    with ``action_map`` false), and only the parts that post-training trains left trainable."""
    torch.manual_seed(cfg.seed)
    model = JEPA(train_cfg.jepa, info.obs_shape, info.action_dim, box and (box["action_low"], box["action_high"]))
    kept = video.state_dict() if cfg.action_map else {k: v for k, v in video.state_dict().items()
                                                      if k.startswith("encoder.")}
    missing, _ = model.load_state_dict(kept, strict=False)
    assert all(k.startswith("predictor.") for k in missing), missing
    model.encoder.requires_grad_(False)
    model.predictor.net.requires_grad_(cfg.tune_predictor or not cfg.action_map)
    return model


def _loss(model: JEPA, encoded, targets: torch.Tensor, starts: np.ndarray, frames: int, cfg: PosttrainConfig,
          dev: torch.device):
    """``loss(step)``: the open-loop prediction of the step's windows of encoded states (drawn by ``(seed, step)``),
    plus, through the action map, the distance of its codes to the pretrained latent actions ``targets``."""

    def loss(step: int) -> dict:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        pick = starts[torch.randint(len(starts), (cfg.batch_size,), generator=g).numpy()]
        w = encoded.windows(pick, frames)
        s, a = w["states"].to(dev), w["actions"].to(dev)
        terms = {"pred": (model.predictor.rollout(s[:, 0], a) - s[:, 1:]).pow(2).mean()}
        terms["loss"] = terms["pred"]
        if cfg.action_map:
            index = torch.from_numpy(pick)[:, None] + torch.arange(frames - 1)[None]
            terms["match"] = (model.predictor.code(s[:, :-1], a) - targets[index].to(dev)).pow(2).mean()
            terms["loss"] = terms["loss"] + cfg.match * terms["match"]
        return terms

    return loss


__all__ = ["PosttrainConfig", "posttrain", "run_config"]
