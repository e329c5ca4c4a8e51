"""Actions for frames that have none: an inverse model fitted on a few labelled episodes labels the rest.

The second way to give a JEPA pretrained on frames alone (Sec. 4.5, ``amia pretrain``) its actions, beside the
action map of ``amia.training.posttrain``. An inverse-dynamics model ``a[t] = Inv(s[t-c : t+c+2], z[t-c : t+c+1])``
reads the pretrained encoder's states around a transition and the latent actions the pretrained model inferred
there; it is fitted on the labelled episodes (the only place actions are seen) and then writes an action for every
transition of the frames, which become an ordinary trajectory file that ``amia train`` takes (the labelled
episodes with their true actions first, then the frames: training holds out the last episodes of a file, and the
few true actions must be trained on). Few labelled transitions suffice because the
pretrained states and latents already hold what moved; the context of ``c`` transitions on each side lets it guess
the action of a push that a wall stopped from the pushes before and after it.

With ``reads="pixels"`` the inverse model reads the frames themselves (``amia.models.inverse.KeypointInverse``) and
needs no pretrained run. Either model also says how sure it is of each action; with ``max_std`` the transitions it
is unsure of (a push against a wall moves nothing, so its action is not in the frames) are left out: their episode
is cut there, and the training learns what walls do from the labelled episodes alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
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
from amia.models.inverse import KeypointInverse, Reading, SequenceInverse, StateInverse, draw_actions, inverse_loss
from amia.models.jepa import JEPA
from amia.training.world_model import ACTION_FREE

READS = ("states", "pixels")
HEADS = ("window", "sequence")
MAX_JOINT_CELLS = 4096


@dataclass
class LabelConfig:
    """The inverse model: what it ``reads`` (``states`` of the pretrained run, or ``pixels`` through ``keypoints``
    soft-argmax maps of a ``width``-channel net), ``context`` transitions on each side of the one it labels (the
    pixel model: its keypoints fitted on single transitions for ``steps``, then a head on the window's frozen
    keypoints for ``head_steps``), ``latent`` whether the pretrained latent actions are inputs beside the states, an
    MLP of two ``hidden`` layers fitted for ``steps`` AdamW steps (``lr``, ``weight_decay``) on ``batch_size``
    labelled transitions; the last ``val_fraction`` of the labelled episodes is held out to report how well it reads
    actions. ``max_std`` > 0 leaves out every transition whose predicted spread (root mean square over the action's
    dimensions, in units of the action box's half width) is above it, cutting its episode there; 0 labels every
    transition. With ``bins`` > 0 the model also gives each action dimension a distribution over that many bins, and
    a transition above ``max_std`` is not cut but gets an action drawn from it (a push that a wall stopped: any push
    into the wall, of any length, as the labelled episodes show); with ``judge`` (a run), ``draws`` actions are
    drawn and the one its world model predicts best is kept (with ``temperature`` > 0: one drawn by the Gibbs
    probabilities of their energies; with ``accept`` > 0: the first whose energy is within ``accept`` times that of
    no action, see ``energy_judge``). With ``keep_direction`` the drawn action keeps only its
    length, in the direction of the mean. The labelled episodes are written ``copies`` times, so that training draws
    their true actions (the only place where a push against a wall is seen with its action, once ``max_std`` leaves
    those out) that much more often.

    ``head="sequence"`` (pixels only) replaces the window of ``context`` transitions by a bidirectional GRU over the
    frozen keypoints of the whole episode (``SequenceInverse``), fitted for ``head_steps`` on crops of ``crop``
    transitions (``batch_size // crop`` crops a step): an agent pinned to a wall for many steps shows how it got
    there and how it left, however far away; with ``positions`` false it reads only the keypoints' moves. ``joint``
    makes the bins one distribution over the ``bins ** A`` cells of the action box instead of one per dimension, so
    that a drawn action keeps the shape of the set of actions the frames allow (every push into a wall, of any
    length and angle into it). With ``same_side`` a drawn action must point within 90 degrees of the mean (the first
    of ``draws`` that does; see ``same_side_first``): the mean of a stopped push points into the wall even where the
    distribution also holds pushes away from it.

    ``mirror_x`` / ``mirror_y`` (pixels only; -1: none) name the action dimension that a left-right / up-down mirror
    image of the frames negates, for a world that is its own mirror image (amia's rooms: 0 and 1): the labelled
    episodes are fitted with their mirror images as well (``mirrored``), so that a few of them show every wall from
    both sides."""

    reads: str = "states"
    context: int = 0
    latent: bool = True
    keypoints: int = 16
    width: int = 32
    max_std: float = 0.0
    bins: int = 0
    draws: int = 8
    judge: str = ""
    temperature: float = 0.0
    accept: float = 0.0
    keep_direction: bool = False
    same_side: bool = False
    head: str = "window"
    positions: bool = True
    mirror_x: int = -1
    mirror_y: int = -1
    joint: bool = False
    crop: int = 32
    copies: int = 1
    hidden: int = 256
    steps: int = 3000
    head_steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    val_fraction: float = 0.1
    seed: int = 0
    threads: int = 0

    def __post_init__(self):
        if self.reads not in READS:
            raise ValueError(f"reads: expected one of {READS}, got {self.reads!r}")
        if self.head not in HEADS:
            raise ValueError(f"head: expected one of {HEADS}, got {self.head!r}")
        if self.head == "sequence" and self.reads != "pixels":
            raise ValueError("head=sequence reads the keypoints of whole episodes: it needs reads=pixels")
        if (self.mirror_x >= 0 or self.mirror_y >= 0) and self.reads != "pixels":
            raise ValueError("mirror_x / mirror_y flip the labelled frames: they need reads=pixels")
        if self.joint and not self.bins:
            raise ValueError("joint=true is a distribution over bins: set bins (e.g. bins=15)")
        at_least(self, 0, "context", "weight_decay", "seed", "threads", "max_std", "bins", "temperature",
                 "accept")
        at_least(self, 1, "hidden", "steps", "head_steps", "batch_size", "draws", "keypoints", "width", "copies", "crop")
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


@dataclass
class Encoded:
    """A file's frames through the pretrained model: ``states (N, D)``, the latent actions ``latents (N, k)``
    of each frame's transition (0 on an episode's last frame), and the context indices of ``context_index``. For
    the pixel model, ``states`` are the frames' keypoints, or (to fit it end to end) ``obs`` holds the frames."""

    states: torch.Tensor
    latents: torch.Tensor
    frames: np.ndarray
    state_index: np.ndarray
    transition_index: np.ndarray
    obs: torch.Tensor | None = None

    def inputs(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self.states[self.state_index[rows]], self.latents[self.transition_index[rows]]


InverseModel = StateInverse | KeypointInverse | SequenceInverse


def predict(model: InverseModel, enc: Encoded, rows: np.ndarray, device: torch.device) -> Reading:
    """The reading of the transitions ``rows``: from the frames where ``enc`` holds them, else from its states (or
    keypoints)."""
    if enc.obs is not None:
        return model.read(enc.obs[enc.state_index[rows]].to(device))
    return model(*(x.to(device) for x in enc.inputs(rows)))


def spread(log_std: torch.Tensor) -> torch.Tensor:
    """The root mean square predicted standard deviation over the action's dimensions ``(B,)``."""
    return torch.exp(2 * log_std).mean(1).sqrt()


def load_states_model(run: str | Path, device: str) -> tuple[JEPA, dict]:
    """The frozen model whose states the inverse model reads: a run trained on frames alone (with its latent
    actions), or an ordinary run, e.g. one trained on earlier labels (a second round of labelling)."""
    saved = read_config(run)
    return load_action_free(run, device) if saved.get("kind") == ACTION_FREE else load_model(run, device)


def through_frames(fn: Callable[[np.ndarray], torch.Tensor], info: DatasetInfo, desc: str, progress: bool,
                   chunk: int) -> torch.Tensor:
    """``fn`` over the ``uint8`` frames of ``info``'s file, a chunk at a time, concatenated (on the CPU)."""
    parts = []
    with h5py.File(info.path, "r") as f:
        for i in tqdm(range(0, info.frames, chunk), desc=f"{desc} {Path(info.path).name}", unit="chunk",
                      disable=not progress):
            parts.append(fn(f["obs"][i:i + chunk]).cpu())
    return torch.cat(parts)


@torch.no_grad()
def encode(model: JEPA, info: DatasetInfo, cfg: LabelConfig, device: torch.device, progress: bool,
           chunk: int = 4096) -> Encoded:
    """Every frame of ``info``'s file through the frozen encoder, and the latent actions of a model trained on
    frames alone (none for an ordinary run, or with ``latent`` false)."""
    states = through_frames(lambda x: encode_frames(model.encoder, x, device), info, "encode", progress, chunk)
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


def make_model(enc: Encoded, action_dim: int, cfg: LabelConfig) -> InverseModel:
    """The inverse model ``cfg.reads`` names, sized for ``enc``."""
    if cfg.reads == "pixels":
        return KeypointInverse(enc.obs.shape[1], action_dim, cfg.context, cfg.keypoints, cfg.width, cfg.hidden,
                               cfg.bins, cfg.joint)
    return StateInverse(enc.states.shape[1], enc.latents.shape[1], action_dim, cfg.context, cfg.hidden, cfg.bins,
                        cfg.joint)


@torch.no_grad()
def read_rows(model: InverseModel, enc: Encoded, rows: np.ndarray, device: torch.device, chunk: int = 2048
              ) -> Reading:
    """``predict`` over many rows, a chunk at a time, on the CPU."""
    parts = [predict(model, enc, rows[i:i + chunk], device) for i in range(0, len(rows), chunk)]
    return Reading(*(torch.cat([part[k] for part in parts]).cpu() for k in range(3)))


def adamw_steps(params: list[torch.nn.Parameter], steps: int, cfg: LabelConfig, step_loss: Callable[[], torch.Tensor],
                desc: str, progress: bool) -> None:
    """``steps`` AdamW steps (``cfg.lr``, ``cfg.weight_decay``, cosine schedule) on the loss ``step_loss`` draws."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in tqdm(range(steps), desc=desc, unit="step", disable=not progress):
        loss = step_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


def fit(enc: Encoded, actions: torch.Tensor, offsets: np.ndarray, cfg: LabelConfig, device: torch.device,
        progress: bool, model: InverseModel | None = None) -> tuple[InverseModel, dict]:
    """Fit ``Inv`` (a new one, or the trainable part of ``model``) on the labelled transitions of the training
    episodes (``actions (N, A)`` normalised); report the held-out episodes' r2 and mean square error, and with
    ``max_std`` the share of them it is sure of and its r2 there."""
    train_eps, val_eps = split_episodes(len(offsets) - 1, cfg.val_fraction)
    episode = np.searchsorted(offsets, enc.frames, side="right") - 1
    rows = {"train": np.flatnonzero(np.isin(episode, train_eps)), "val": np.flatnonzero(np.isin(episode, val_eps))}
    torch.manual_seed(cfg.seed)
    model = (model or make_model(enc, actions.shape[1], cfg)).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(cfg.seed)

    def step_loss() -> torch.Tensor:
        pick = rows["train"][torch.randint(len(rows["train"]), (cfg.batch_size,), generator=g).numpy()]
        return inverse_loss(predict(model, enc, pick, device), actions[enc.frames[pick]].to(device))
    adamw_steps(trainable, cfg.steps, cfg, step_loss, "inverse model", progress)
    model.eval()
    report = {}
    for name, r in rows.items():
        pred, log_std, _ = read_rows(model, enc, r, device)
        target = actions[enc.frames[r]]
        report[f"{name}_r2"], report[f"{name}_mse"] = r2(pred, target), float((pred - target).pow(2).mean())
    if cfg.max_std > 0:
        sure = spread(log_std) <= cfg.max_std
        report["val_sure_fraction"] = float(sure.float().mean())
        report["val_sure_r2"] = r2(pred[sure], target[sure]) if sure.sum() > 1 else None
    return model, report


Judge = Callable[[np.ndarray, torch.Tensor], torch.Tensor]


def infer_actions(model: InverseModel, enc: Encoded, total: int, device: torch.device, cfg: LabelConfig,
                  judge: Judge | None = None, offsets: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised actions ``(N, A)`` for every frame (0 on each episode's last frame, where none is taken), and
    the predicted spread ``(N,)`` of each (0 on last frames). With ``bins`` and ``max_std``, a transition whose
    spread is above ``max_std`` gets an action drawn from its bins instead of their mean: one draw, or the one of
    ``draws`` that ``judge`` (frame indices ``(M,)``, draws ``(K, M, A)`` -> ``(M, A)``) picks. A
    ``SequenceInverse`` reads whole episodes (``offsets``, those of ``enc``'s file)."""
    if isinstance(model, SequenceInverse):
        mean, log_std, logits = read_sequence(model, enc.states, offsets, device)
    else:
        mean, log_std, logits = read_rows(model, enc, np.arange(len(enc.frames)), device)
    std = spread(log_std)
    if cfg.max_std > 0 and logits.shape[-1]:
        unsure = std > cfg.max_std
        g = torch.Generator().manual_seed(cfg.seed)
        draws = torch.stack([draw_actions(logits[unsure], g, mean.shape[1])
                             for _ in range(cfg.draws if judge or cfg.same_side else 1)])
        if cfg.same_side:
            draws = same_side_first(draws, mean[unsure])
        picked = draws[0] if judge is None else judge(enc.frames[unsure.numpy()], draws)
        if cfg.keep_direction:  # the mean's direction, the draw's length
            direction = mean[unsure] / mean[unsure].norm(dim=1, keepdim=True).clamp_min(1e-6)
            picked = (direction * picked.norm(dim=1, keepdim=True)).clamp(-1, 1)
        mean[unsure] = picked
    out, spreads = torch.zeros(total, mean.shape[1]), torch.zeros(total)
    out[enc.frames], spreads[enc.frames] = mean, std
    return out, spreads


def same_side_first(draws: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """For each transition, its draws ``(K, M, A)`` within 90 degrees of its ``mean (M, A)`` first (in their drawn
    order), the others replaced by the first of those (what a judge then chooses from); where none is, the first
    draw turned to the mean's direction."""
    same = (draws * mean).sum(-1) > 0
    order = torch.argsort((~same).float(), dim=0, stable=True)
    out = torch.gather(draws, 0, order[..., None].expand_as(draws))
    beyond = torch.arange(len(draws))[:, None] >= same.sum(0)[None]
    out = torch.where(beyond[..., None], out[:1].expand_as(out), out)
    none = ~same.any(0)
    direction = mean[none] / mean[none].norm(dim=1, keepdim=True).clamp_min(1e-6)
    out[0, none] = (direction * out[0, none].norm(dim=1, keepdim=True)).clamp(-1, 1)
    return out


def episode_groups(offsets: np.ndarray, episodes: np.ndarray | None = None, chunk: int = 256) -> list[np.ndarray]:
    """The ``episodes`` (default: all) of at least two frames, in groups of equal length (at most ``chunk``)."""
    episodes = np.arange(len(offsets) - 1) if episodes is None else np.asarray(episodes)
    lengths = offsets[episodes + 1] - offsets[episodes]
    groups = []
    for n in np.unique(lengths[lengths >= 2]):
        same = episodes[lengths == n]
        groups += [same[i:i + chunk] for i in range(0, len(same), chunk)]
    return groups


def episode_frames(offsets: np.ndarray, episodes: np.ndarray, start: np.ndarray | int, length: int) -> np.ndarray:
    """Frame indices ``(E, length)`` of ``length`` frames from ``start`` within each of ``episodes``."""
    return offsets[episodes][:, None] + np.asarray(start).reshape(-1, 1) + np.arange(length)[None]


@torch.no_grad()
def read_sequence(model: SequenceInverse, points: torch.Tensor, offsets: np.ndarray, device: torch.device,
                  episodes: np.ndarray | None = None) -> Reading:
    """The reading of every transition of ``episodes`` (default: all), whole episode by whole episode, in the
    order of ``context_index`` (episode after episode, frame after frame), on the CPU."""
    groups = episode_groups(offsets, episodes)
    parts = {}
    for group in groups:
        idx = episode_frames(offsets, group, 0, int(offsets[group[0] + 1] - offsets[group[0]]))
        reading = model(points[idx].to(device))
        for k, e in enumerate(group):
            n = idx.shape[1] - 1
            parts[int(e)] = [x[k * n:(k + 1) * n].cpu() for x in reading]
    order = sorted(parts)
    return Reading(*(torch.cat([parts[e][k] for e in order]) for k in range(3)))


def fit_sequence(points: torch.Tensor, actions: torch.Tensor, offsets: np.ndarray, conv: torch.nn.Module,
                 cfg: LabelConfig, device: torch.device, progress: bool) -> tuple[SequenceInverse, dict]:
    """A ``SequenceInverse`` on the frozen keypoints ``points (N, 2K)`` of the labelled file, fitted on random crops
    of its training episodes; the held-out episodes' r2 and mean square error read whole."""
    train_eps, val_eps = split_episodes(len(offsets) - 1, cfg.val_fraction)
    lengths = offsets[train_eps + 1] - offsets[train_eps]
    train_eps = train_eps[lengths >= 2]
    if not len(train_eps):
        raise RunError("head=sequence: no labelled training episode has a transition")
    window = int(min(cfg.crop + 1, lengths[lengths >= 2].min()))
    torch.manual_seed(cfg.seed)
    model = SequenceInverse(conv, cfg.keypoints, actions.shape[1], cfg.hidden, cfg.bins, cfg.joint,
                            cfg.positions).to(device)
    g = np.random.default_rng(cfg.seed)

    def step_loss() -> torch.Tensor:
        eps = g.choice(train_eps, max(1, cfg.batch_size // cfg.crop))
        idx = episode_frames(offsets, eps, g.integers(0, offsets[eps + 1] - offsets[eps] - window + 1), window)
        return inverse_loss(model(points[idx].to(device)), actions[idx[:, :-1]].flatten(0, 1).to(device))
    adamw_steps([p for p in model.parameters() if p.requires_grad], cfg.head_steps, cfg, step_loss, "sequence head",
                progress)
    model.eval()
    report = {}
    for name, eps in (("train", train_eps), ("val", val_eps)):
        pred = read_sequence(model, points, offsets, device, eps).mean
        frames = np.concatenate([np.arange(offsets[e], offsets[e + 1] - 1) for e in sorted(eps)]) if len(eps) else []
        target = actions[frames]
        report[f"{name}_r2"], report[f"{name}_mse"] = r2(pred, target), float((pred - target).pow(2).mean())
    return model, report


@torch.no_grad()
def energy_judge(run: str | Path, info: DatasetInfo, mid: np.ndarray, half: np.ndarray, device: torch.device,
                 progress: bool, temperature: float = 0.0, seed: int = 0, chunk: int = 8192,
                 accept: float = 0.0) -> Judge:
    """Infer the action of a transition from its frames by energy (Sec. 4.5): of the actions drawn for transition
    ``t``, the one whose prediction by the world model of ``run`` from state ``t`` lands nearest state ``t + 1``
    (``temperature`` 0), or one drawn with Gibbs probabilities ``exp(-E / T)`` (Sec. 4.8), ``T`` being
    ``temperature`` times the median over transitions of their best draw's energy (the model's own error where a
    draw fits): the frames of a push that a wall stopped say only that nothing moved; every push the world model
    predicts to move nothing there fits, and any of them may be drawn. With ``accept`` > 0, the first draw whose
    energy is at most ``accept`` times that of no action at all (the zero action; the energy of the best draw where
    that is larger) is kept: the lowest energy favours short pushes, which move little anywhere, where every push
    the model predicts to move no more than doing nothing fits as well."""
    world, _ = load_model(run, str(device))
    states = through_frames(lambda x: encode_frames(world.encoder, x, device), info, "judge encodes", progress, chunk)
    half_t, mid_t = torch.as_tensor(half).float(), torch.as_tensor(mid).float()

    def energy(t: torch.Tensor, normalised: torch.Tensor) -> torch.Tensor:
        actions = world.normalise((normalised * half_t + mid_t).to(device))[:, None]
        pred = world.predictor.rollout(states[t].to(device), actions)[:, 0]
        return (pred - states[t + 1].to(device)).pow(2).mean(-1).cpu()

    def energies_of(frames: np.ndarray, draws: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.stack([energy(torch.from_numpy(frames[i:i + chunk]), d[i:i + chunk]) for d in draws])
                          for i in range(0, len(frames), chunk)], dim=1)

    def pick(frames: np.ndarray, draws: torch.Tensor) -> torch.Tensor:
        energies = energies_of(frames, draws)
        if accept > 0:
            still = energies_of(frames, ((torch.zeros(1, *draws.shape[1:]) - mid_t) / half_t))[0]
            bar = torch.maximum(accept * still, energies.min(0).values)
            best = (energies <= bar).float().argmax(0)  # the first draw under the bar
        elif temperature > 0:
            least = energies.min(0).values
            p = (-(energies - least) / (temperature * least.median().clamp_min(1e-12))).softmax(0)
            best = torch.multinomial(p.T, 1, generator=torch.Generator().manual_seed(seed))[:, 0]
        else:
            best = energies.argmin(0)
        return draws[best, torch.arange(len(frames))]
    return pick


@torch.no_grad()
def encode_pixels(model: KeypointInverse, info: DatasetInfo, cfg: LabelConfig, device: torch.device,
                  progress: bool, chunk: int = 4096) -> Encoded:
    """Every frame of ``info``'s file through the pixel model's keypoints."""
    points = through_frames(lambda x: model.keypoints(torch.from_numpy(x).to(device)), info, "keypoints", progress,
                            chunk)
    frames, state_index, transition_index = context_index(info.episode_offsets, cfg.context)
    return Encoded(points, torch.zeros(info.frames, 0), frames, state_index, transition_index)


def mirrored(obs: torch.Tensor, actions: torch.Tensor, offsets: np.ndarray, mirror_x: int, mirror_y: int
             ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Each episode followed by its mirror images (frames flipped left-right, action dimension ``mirror_x``
    negated; up-down, ``mirror_y``; both): a world that looks and moves the same in a mirror gives its labelled
    episodes' walls seen from both sides. Indices below 0 name no mirror. Episode after episode, so that the
    held-out last episodes keep their own mirrors."""
    flips = [([], [])]
    if mirror_x >= 0:
        flips.append(([-1], [mirror_x]))
    if mirror_y >= 0:
        flips.append(([-2], [mirror_y]))
    if mirror_x >= 0 and mirror_y >= 0:
        flips.append(([-1, -2], [mirror_x, mirror_y]))
    if len(flips) == 1:
        return obs, actions, offsets
    parts_obs, parts_act, lengths = [], [], []
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        for dims, negate in flips:
            parts_obs.append(obs[lo:hi].flip(dims) if dims else obs[lo:hi])
            a = actions[lo:hi].clone()
            a[:, negate] = -a[:, negate]
            parts_act.append(a)
            lengths.append(hi - lo)
    return torch.cat(parts_obs), torch.cat(parts_act), np.concatenate([[0], np.cumsum(lengths)])


def load_pixels(info: DatasetInfo, cfg: LabelConfig) -> Encoded:
    """The labelled file's frames in memory, to fit the pixel model end to end."""
    with h5py.File(info.path, "r") as f:
        obs = torch.from_numpy(f["obs"][()])
    frames, state_index, transition_index = context_index(info.episode_offsets, cfg.context)
    return Encoded(torch.zeros(info.frames, 0), torch.zeros(info.frames, 0), frames, state_index, transition_index,
                   obs)


def check_files(video: JEPA | None, frames: DatasetInfo, labelled: DatasetInfo) -> None:
    """Refuse frames of another size than the pretrained model's (than the labelled file's, without a pretrained
    model)."""
    shape, whose = (video.obs_shape, "the pretrained model takes") if video is not None else \
        (labelled.obs_shape, f"the labelled file {labelled.path} has")
    for info in (frames, labelled):
        if tuple(info.obs_shape) != tuple(shape):
            raise RunError(f"{info.path}: frames (channels, height, width) are {info.obs_shape}, but {whose} "
                           f"{tuple(shape)}")


def segments(offsets: np.ndarray, keep: np.ndarray) -> list[tuple[int, int]]:
    """Frame ranges ``[lo, hi)`` of at least two frames within an episode whose every transition ``t`` (frame
    ``t`` to ``t + 1``, ``lo <= t < hi - 1``) has ``keep[t]``: the episodes, cut at the transitions left out."""
    out = []
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        start = lo
        for t in range(lo, hi):
            if t == hi - 1 or not keep[t]:
                if t > start:
                    out.append((int(start), int(t + 1)))
                start = t + 1
    return out


def write_labelled(out: Path, frames: DatasetInfo, labelled: DatasetInfo, actions: np.ndarray, meta: dict,
                   progress: bool, keep: np.ndarray | None = None, copies: int = 1) -> None:
    """The labelled episodes with their own actions (``copies`` times), then the frames with their inferred
    ``actions (N, A)`` (only the ``segments`` of the transitions ``keep`` names, where given), as one file in the
    labelled world (true states kept only where both files name the same ones). The labelled episodes come first
    because training holds out a file's last episodes."""
    names = labelled.state_names if frames.state_names == labelled.state_names else ()
    writer = TrajectoryWriter(out, labelled.env_id, labelled.obs_shape, labelled.action_dim, names, meta,
                              labelled.action_low, labelled.action_high)
    everything = np.ones(frames.frames, bool)
    try:
        for info, acts in [(labelled, None)] * copies + [(frames, actions)]:
            offsets = info.episode_offsets
            pieces = segments(offsets, keep if acts is not None and keep is not None else everything[:info.frames])
            with h5py.File(info.path, "r") as f:
                for lo, hi in tqdm(pieces, disable=not progress, desc=f"write {Path(info.path).name}", unit="piece"):
                    a = acts[lo:hi - 1] if acts is not None else f["action"][lo:hi - 1]
                    state = f["state"][lo:hi] if names else np.zeros((hi - lo, 0), np.float32)
                    writer.add_batch(f["obs"][lo:hi][None], a[None], state[None])
    except BaseException:
        writer.abort()
        raise
    writer.close()


def fit_labeller(pretrained_run: str | Path | None, labelled: DatasetInfo, cfg: LabelConfig, dev: torch.device,
                 progress: bool) -> tuple[InverseModel, JEPA | None, dict, DatasetInfo | None]:
    """The inverse model fitted on the labelled file, the pretrained model whose states it reads (None for the
    pixel model), its report, and the frames the run was pretrained on (None without a run)."""
    video, pretrained_frames = None, None
    if pretrained_run is not None:
        video, saved = load_states_model(pretrained_run, str(dev))
        pretrained_frames = read_info(data_file(pretrained_run, saved))
    elif cfg.reads == "states":
        raise RunError("labelling with reads=states needs a pretrained run (--run); reads=pixels needs none")
    if cfg.joint and cfg.bins ** labelled.action_dim > MAX_JOINT_CELLS:
        raise RunError(f"joint=true with bins={cfg.bins}: {cfg.bins ** labelled.action_dim} cells for the "
                       f"{labelled.action_dim}-dimensional actions of {labelled.path}; at most {MAX_JOINT_CELLS} (fewer "
                       f"bins, or joint=false)")
    for name in ("mirror_x", "mirror_y"):
        if getattr(cfg, name) >= labelled.action_dim:
            raise RunError(f"{name}={getattr(cfg, name)}: the actions of {labelled.path} have {labelled.action_dim} "
                           f"dimensions (0 to {labelled.action_dim - 1})")
    mid, half = action_scale(labelled)
    with h5py.File(labelled.path, "r") as f:
        actions = torch.from_numpy((f["action"][()] - mid) / half).float()
    if cfg.reads == "pixels":
        obs, actions, offsets = mirrored(load_pixels(labelled, cfg).obs, actions, labelled.episode_offsets,
                                         cfg.mirror_x, cfg.mirror_y)
        model, report = fit_pixels(Encoded(*[torch.zeros(len(obs), 0)] * 2, *context_index(offsets, cfg.context), obs),
                                   actions, offsets, cfg, dev, progress)
    else:
        model, report = fit(encode(video, labelled, cfg, dev, progress), actions, labelled.episode_offsets, cfg, dev,
                            progress)
    return model, (video if cfg.reads == "states" else None), report, pretrained_frames


def fit_pixels(enc: Encoded, actions: torch.Tensor, offsets: np.ndarray, cfg: LabelConfig, dev: torch.device,
               progress: bool) -> tuple[InverseModel, dict]:
    """The pixel model on the labelled frames ``enc.obs``: its keypoints fitted end to end on single transitions;
    with ``context`` > 0 a second head then reads the frozen keypoints of the whole window (fitting the net on every
    frame of every window would cost ``2c + 2`` times as much, for keypoints that one transition already teaches);
    with ``head="sequence"``, a GRU over whole episodes of them."""
    single = replace(cfg, context=0)
    frames, state_index, transition_index = context_index(offsets, 0)
    model, report = fit(replace(enc, frames=frames, state_index=state_index, transition_index=transition_index),
                        actions, offsets, single, dev, progress)
    if cfg.context == 0 and cfg.head == "window":
        return model, report
    model.conv.requires_grad_(False)
    with torch.no_grad():
        keypoints = torch.cat([model.keypoints(enc.obs[i:i + 4096].to(dev)).cpu() for i in range(0, len(enc.obs), 4096)])
    if cfg.head == "sequence":
        sequence, sequence_report = fit_sequence(keypoints, actions, offsets, model.conv, cfg, dev, progress)
        return sequence, {**sequence_report, "single_transition": report}
    windowed = KeypointInverse(enc.obs.shape[1], actions.shape[1], cfg.context, cfg.keypoints, cfg.width,
                               cfg.hidden, cfg.bins, cfg.joint).to(dev)
    windowed.conv.load_state_dict(model.conv.state_dict())
    windowed.conv.requires_grad_(False)
    frames, state_index, transition_index = context_index(offsets, cfg.context)
    points = Encoded(keypoints, torch.zeros(len(keypoints), 0), frames, state_index, transition_index)
    windowed, window_report = fit(points, actions, offsets, replace(cfg, steps=cfg.head_steps), dev, progress,
                                  windowed)
    return windowed, {**window_report, "single_transition": report}


def label_frames(pretrained_run: str | Path | None, data: str | Path, out: str | Path,
                 frames: str | Path | None = None, cfg: LabelConfig | None = None, device: str = "cpu",
                 progress: bool = True) -> dict:
    """Fit the inverse model on the labelled file ``data`` (with the states of the run ``pretrained_run``, ``amia
    pretrain`` or an ordinary run, or from the pixels), label the frames the run was trained on (or the file
    ``frames``) and write them, after the labelled episodes, to the new trajectory file ``out``; returns the
    report (also in the file's ``meta``)."""
    cfg, out, dev = cfg or LabelConfig(), Path(out), torch.device(device)
    if out.exists():
        raise RunError(f"--out {out} exists; labelling writes a new file")
    if frames is None and pretrained_run is None:
        raise RunError("name the frames to label (--frames) or the pretrained run whose frames they are (--run)")
    set_threads(cfg.threads)
    start = time.perf_counter()
    labelled = read_info(data)
    if labelled.action_dim == 0:
        raise RunError(f"--data {labelled.path}: the file has no actions; labelling needs labelled episodes")
    if frames is not None and pretrained_run is None:
        check_files(None, read_info(frames), labelled)
    model, video, fit_report, pretrained_frames = fit_labeller(pretrained_run, labelled, cfg, dev, progress)
    frames_info = read_info(frames) if frames is not None else pretrained_frames
    check_files(video, frames_info, labelled)
    enc = encode(video, frames_info, cfg, dev, progress) if video is not None else \
        encode_pixels(model, frames_info, cfg, dev, progress)
    mid, half = action_scale(labelled)
    judge = energy_judge(cfg.judge, frames_info, mid, half, dev, progress, cfg.temperature, cfg.seed,
                         accept=cfg.accept) \
        if cfg.judge else None
    normalised, std = infer_actions(model, enc, frames_info.frames, dev, cfg, judge, frames_info.episode_offsets)
    inferred = normalised.numpy() * half + mid
    keep = (std <= cfg.max_std).numpy() if cfg.max_std > 0 and not cfg.bins else None
    report = {"inverse_model": fit_report, "labelled_episodes": labelled.episodes, "labelled_frames": labelled.frames,
              "frames_file": frames_info.path, "frames_episodes": frames_info.episodes}
    if keep is not None:
        report["kept_transitions"] = float(keep[enc.frames].mean())
    if cfg.bins and cfg.max_std > 0:
        report["drawn_transitions"] = float((std[enc.frames] > cfg.max_std).float().mean())
    if frames_info.action_dim == labelled.action_dim:  # the frames' own actions, never seen: how right the labels are
        with h5py.File(frames_info.path, "r") as f:
            truth = torch.from_numpy((f["action"][()][enc.frames] - mid) / half).float()
        report["frames_r2"] = r2(normalised[enc.frames], truth)
        if keep is not None and keep[enc.frames].sum() > 1:
            report["frames_kept_r2"] = r2(normalised[enc.frames][keep[enc.frames]], truth[keep[enc.frames]])
    report["seconds"] = round(time.perf_counter() - start, 1)
    meta = {"labelled_by": {"pretrained": str(Path(pretrained_run).resolve()) if pretrained_run else None,
                            "weights": weights_fingerprint(video if video is not None else model),
                            "config": to_dict(cfg), "labelled_file": labelled.path, "git_rev": git_revision(),
                            **report}}
    write_labelled(out, frames_info, labelled, inferred.astype(np.float32), meta, progress, keep, cfg.copies)
    return report


__all__ = ["InverseModel", "LabelConfig", "context_index", "label_frames", "segments"]
