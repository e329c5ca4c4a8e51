"""Actions for frames that have none: an inverse model fitted on a few labelled episodes labels the rest.

The second way to give a JEPA pretrained on frames alone (Sec. 4.5, ``amia pretrain``) its actions, beside the
action map of ``amia.training.posttrain``. An inverse-dynamics model ``a[t] = Inv(s[t-c : t+c+2], z[t-c : t+c+1])``
reads the pretrained encoder's states around a transition and the latent actions the pretrained model inferred
there; it is fitted on the labelled episodes (the only place actions are seen) and then writes an action for every
transition of the frames, which become an ordinary trajectory file that ``amia train`` takes (the frames' file
followed by the labelled episodes with their true actions). Few labelled transitions suffice because the
pretrained states and latents already hold what moved; the context of ``c`` transitions on each side lets it guess
the action of a push that a wall stopped from the pushes before and after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from amia.data.dataset import DatasetInfo, TrajectoryWriter, read_info, split_episodes
from amia.data.encode import encode_frames
from amia.infra.config import to_dict
from amia.infra.host import set_threads
from amia.infra.provenance import git_revision
from amia.infra.run_dir import RunError, data_file, load_action_free, load_model, read_config, weights_fingerprint
from amia.infra.validate import at_least, positive, within
from amia.models.action_free import ActionFreeJEPA
from amia.models.jepa import JEPA
from amia.models.layers import mlp
from amia.training.world_model import ACTION_FREE


@dataclass
class LabelConfig:
    """The inverse model: ``context`` transitions on each side of the one it labels, ``latent`` whether the
    pretrained latent actions are inputs beside the states, an MLP of two ``hidden`` layers fitted for ``steps``
    AdamW steps (``lr``, ``weight_decay``) on ``batch_size`` labelled transitions; the last ``val_fraction`` of the
    labelled episodes is held out to report how well it reads actions."""

    context: int = 0
    latent: bool = True
    hidden: int = 256
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    val_fraction: float = 0.1
    seed: int = 0
    threads: int = 0

    def __post_init__(self):
        at_least(self, 0, "context", "weight_decay", "seed", "threads")
        at_least(self, 1, "hidden", "steps", "batch_size")
        positive(self, "lr")
        within(self, "val_fraction", 0, 1, open_low=True, open_high=True)


def context_index(offsets: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """For every frame ``t`` that starts a transition (not the last of its episode), the frame indices of the
    states ``t-c .. t+c+1`` and of the transitions ``t-c .. t+c``, clamped to the episode: ``(frames, states
    (M, 2c+2), transitions (M, 2c+1))``."""
    frames, lows, highs = [], [], []
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        if hi - lo >= 2:
            frames.append(np.arange(lo, hi - 1))
            lows.append(np.full(hi - 1 - lo, lo))
            highs.append(np.full(hi - 1 - lo, hi - 1))
    t, lo, hi = (np.concatenate(x) for x in (frames, lows, highs))
    k = np.arange(-context, context + 2)
    states = np.clip(t[:, None] + k[None], lo[:, None], hi[:, None])
    transitions = np.clip(t[:, None] + k[None, :-1], lo[:, None], hi[:, None] - 1)
    return t, states, transitions


class InverseModel(torch.nn.Module):
    """``Inv``: normalised actions in [-1, 1] from the states and latent actions around a transition."""

    def __init__(self, state_dim: int, latent_dim: int, action_dim: int, cfg: LabelConfig):
        super().__init__()
        width = (2 * cfg.context + 2) * state_dim + (2 * cfg.context + 1) * latent_dim
        self.net = mlp([width, cfg.hidden, cfg.hidden, action_dim])

    def forward(self, states: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``states (B, 2c+2, D)``, ``latents (B, 2c+1, k)`` (k may be 0) -> ``(B, A)``."""
        return torch.tanh(self.net(torch.cat([states.flatten(1), latents.flatten(1)], dim=1)))


@dataclass
class Encoded:
    """A file's frames through the pretrained model: ``states (N, D)``, the latent actions ``latents (N, k)``
    of each frame's transition (0 on an episode's last frame), and the context indices of ``context_index``."""

    states: torch.Tensor
    latents: torch.Tensor
    frames: np.ndarray
    state_index: np.ndarray
    transition_index: np.ndarray

    def inputs(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self.states[self.state_index[rows]], self.latents[self.transition_index[rows]]


def load_states_model(run: str | Path, device: str) -> tuple[JEPA, dict]:
    """The frozen model whose states the inverse model reads: a run trained on frames alone (with its latent
    actions), or an ordinary run, e.g. one trained on earlier labels (a second round of labelling)."""
    saved = read_config(run)
    return load_action_free(run, device) if saved.get("kind") == ACTION_FREE else load_model(run, device)


@torch.no_grad()
def encode(model: JEPA, info: DatasetInfo, cfg: LabelConfig, device: torch.device, progress: bool,
           chunk: int = 4096) -> Encoded:
    """Every frame of ``info``'s file through the frozen encoder, and the latent actions of a model trained on
    frames alone (none for an ordinary run, or with ``latent`` false)."""
    parts = []
    with h5py.File(info.path, "r") as f:
        for i in tqdm(range(0, info.frames, chunk), desc=f"encode {Path(info.path).name}", unit="chunk",
                      disable=not progress):
            parts.append(encode_frames(model.encoder, f["obs"][i:i + chunk], device))
    states = torch.cat(parts)
    frames, state_index, transition_index = context_index(info.episode_offsets, cfg.context)
    latents = torch.zeros(len(states), 0)
    if cfg.latent and isinstance(model, ActionFreeJEPA):
        latents = torch.zeros(len(states), model.latent_action.dim)
        pairs = torch.stack([states[frames], states[frames + 1]], dim=1).to(device)
        latents[frames] = model.latent_actions(pairs)[:, 0].cpu()
    return Encoded(states, latents, frames, state_index, transition_index)


def action_scale(info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    """``(mid, half)`` that map the labelled file's actions into [-1, 1]: its declared box, else its largest
    action (amia's worlds: the spec's step)."""
    if info.action_low is not None and info.action_high is not None:
        low, high = np.asarray(info.action_low, np.float32), np.asarray(info.action_high, np.float32)
        return (high + low) / 2, np.maximum((high - low) / 2, 1e-6)
    with h5py.File(info.path, "r") as f:
        largest = float(np.abs(f["action"][()]).max()) if info.action_max <= 0 else info.action_max
    return np.zeros(info.action_dim, np.float32), np.full(info.action_dim, max(largest, 1e-6), np.float32)


def r2(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Coefficient of determination over all action dimensions."""
    return float(1 - (pred - target).pow(2).sum() / (target - target.mean(0)).pow(2).sum().clamp_min(1e-12))


def fit(enc: Encoded, actions: torch.Tensor, offsets: np.ndarray, cfg: LabelConfig, device: torch.device,
        progress: bool) -> tuple[InverseModel, dict]:
    """Fit ``Inv`` on the labelled transitions of the training episodes (``actions (N, A)`` normalised); report
    the held-out episodes' r2 and mean square error."""
    train_eps, val_eps = split_episodes(len(offsets) - 1, cfg.val_fraction)
    episode = np.searchsorted(offsets, enc.frames, side="right") - 1
    rows = {"train": np.flatnonzero(np.isin(episode, train_eps)), "val": np.flatnonzero(np.isin(episode, val_eps))}
    torch.manual_seed(cfg.seed)
    model = InverseModel(enc.states.shape[1], enc.latents.shape[1], actions.shape[1], cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in tqdm(range(cfg.steps), desc="inverse model", unit="step", disable=not progress):
        pick = rows["train"][torch.randint(len(rows["train"]), (cfg.batch_size,), generator=g).numpy()]
        s, z = (x.to(device) for x in enc.inputs(pick))
        loss = (model(s, z) - actions[enc.frames[pick]].to(device)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        report = {}
        for name, r in rows.items():
            pred = model(*(x.to(device) for x in enc.inputs(r))).cpu()
            target = actions[enc.frames[r]]
            report[f"{name}_r2"], report[f"{name}_mse"] = r2(pred, target), float((pred - target).pow(2).mean())
    return model, report


@torch.no_grad()
def infer_actions(model: InverseModel, enc: Encoded, total: int, device: torch.device, chunk: int = 8192
                  ) -> torch.Tensor:
    """Normalised actions ``(N, A)`` for every frame (0 on each episode's last frame, where none is taken)."""
    out = torch.zeros(total, model.net[-1].out_features)
    for i in range(0, len(enc.frames), chunk):
        rows = np.arange(i, min(i + chunk, len(enc.frames)))
        out[enc.frames[rows]] = model(*(x.to(device) for x in enc.inputs(rows))).cpu()
    return out


def check_files(video: JEPA, frames: DatasetInfo, labelled: DatasetInfo) -> None:
    """Refuse a labelled file without actions, or frames of another size than the pretrained model's."""
    if labelled.action_dim == 0:
        raise RunError(f"--data {labelled.path}: the file has no actions; labelling needs labelled episodes")
    for info in (frames, labelled):
        if tuple(info.obs_shape) != tuple(video.obs_shape):
            raise RunError(f"{info.path}: frames (channels, height, width) are {info.obs_shape}, but the pretrained "
                           f"model takes {video.obs_shape}")


def write_labelled(out: Path, frames: DatasetInfo, labelled: DatasetInfo, actions: np.ndarray, meta: dict,
                   progress: bool) -> None:
    """The frames with their inferred ``actions (N, A)``, then the labelled episodes with their own, as one file
    in the labelled world (true states kept only where both files name the same ones)."""
    names = labelled.state_names if frames.state_names == labelled.state_names else ()
    writer = TrajectoryWriter(out, labelled.env_id, labelled.obs_shape, labelled.action_dim, names, meta,
                              labelled.action_low, labelled.action_high)
    try:
        for info, acts in ((frames, actions), (labelled, None)):
            with h5py.File(info.path, "r") as f:
                offsets = info.episode_offsets
                for lo, hi in tqdm(zip(offsets[:-1], offsets[1:]), total=len(offsets) - 1, disable=not progress,
                                   desc=f"write {Path(info.path).name}", unit="episode"):
                    a = acts[lo:hi - 1] if acts is not None else f["action"][lo:hi - 1]
                    state = f["state"][lo:hi] if names else np.zeros((hi - lo, 0), np.float32)
                    writer.add_batch(f["obs"][lo:hi][None], a[None], state[None])
    except BaseException:
        writer.abort()
        raise
    writer.close()


def label_frames(pretrained_run: str | Path, data: str | Path, out: str | Path, frames: str | Path | None = None,
                 cfg: LabelConfig | None = None, device: str = "cpu", progress: bool = True) -> dict:
    """Fit the inverse model on the labelled file ``data`` with the states of the run ``pretrained_run`` (``amia
    pretrain``, or an ordinary run), label the frames it was trained on (or the file ``frames``) and write them,
    followed by the labelled episodes, to the new trajectory file ``out``; returns the report (also in the file's
    ``meta``)."""
    cfg, out, dev = cfg or LabelConfig(), Path(out), torch.device(device)
    if out.exists():
        raise RunError(f"--out {out} exists; labelling writes a new file")
    set_threads(cfg.threads)
    start = time.perf_counter()
    video, saved = load_states_model(pretrained_run, device)
    frames_info = read_info(frames or data_file(pretrained_run, saved))
    labelled = read_info(data)
    check_files(video, frames_info, labelled)
    mid, half = action_scale(labelled)
    with h5py.File(labelled.path, "r") as f:
        actions = torch.from_numpy((f["action"][()] - mid) / half).float()
    model, report = fit(encode(video, labelled, cfg, dev, progress), actions, labelled.episode_offsets, cfg, dev,
                        progress)
    enc = encode(video, frames_info, cfg, dev, progress)
    inferred = infer_actions(model, enc, frames_info.frames, dev).numpy() * half + mid
    report = {"inverse_model": report, "labelled_episodes": labelled.episodes, "labelled_frames": labelled.frames,
              "frames_file": frames_info.path, "frames_episodes": frames_info.episodes}
    if frames_info.action_dim == labelled.action_dim:  # the frames' own actions, never seen: how right the labels are
        with h5py.File(frames_info.path, "r") as f:
            truth = torch.from_numpy((f["action"][()][enc.frames] - mid) / half).float()
        report["frames_r2"] = r2(torch.from_numpy((inferred[enc.frames] - mid) / half).float(), truth)
    report["seconds"] = round(time.perf_counter() - start, 1)
    meta = {"labelled_by": {"pretrained": str(Path(pretrained_run).resolve()), "weights": weights_fingerprint(video),
                            "config": to_dict(cfg), "labelled_file": labelled.path, "git_rev": git_revision(),
                            **report}}
    write_labelled(out, frames_info, labelled, inferred.astype(np.float32), meta, progress)
    return report


__all__ = ["InverseModel", "LabelConfig", "context_index", "label_frames"]
