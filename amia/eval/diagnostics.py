"""Is the representation good? Probe quality, open-loop prediction error in pixels, collapse alarms (Sec. 4.5)."""

from __future__ import annotations

import numpy as np
import torch

from amia.data.dataset import read_info
from amia.data.encode import encode_frames
from amia.data.sampler import WindowSampler
from amia.models.jepa import JEPA
from amia.models.probe import LinearProbe, r2_score


def effective_rank(states: torch.Tensor) -> float:
    """RankMe: ``exp`` of the entropy of the normalised singular values of centred states ``(N, D)``."""
    sv = torch.linalg.svdvals((states - states.mean(0)).double())
    p = sv / sv.sum().clamp_min(1e-12) + 1e-12
    return float(torch.exp(-(p * p.log()).sum()))


def draw_windows(sampler: WindowSampler, count: int, offset: int = 0) -> dict[str, np.ndarray]:
    """``count`` windows from a sampler's batches ``offset``, ``offset + 1``, ... (arrays as ``sampler.batch``)."""
    batches = [sampler.batch(offset + i) for i in range(-(-count // sampler.batch_size))]
    return {k: np.concatenate([b[k] for b in batches])[:count] for k in batches[0]}


POSITION = ("x", "y")  # the first state columns of amia's worlds: the agent's position in pixels


@torch.no_grad()
def representation_report(model: JEPA, train: WindowSampler, val: WindowSampler, device: torch.device,
                          probe_windows: int = 1024, val_windows: int = 512, horizon: int = 16,
                          state_names: tuple[str, ...] = POSITION) -> dict:
    """Score states and ``horizon``-step predictions on held-out windows; probe the true state where there is one.

    Always: ``pred_error_repr_h{h}`` / ``copy_error_repr_h{h}`` (mean distance in representation space from the
    predicted / the first state to the encoded frame ``h`` steps on), ``embedding_std`` (per dimension),
    ``embedding_std_min`` and ``effective_rank`` (the collapse alarms). With a state whose first columns are the
    agent's ``x, y`` (``state_names``): ``probe_r2`` and the same errors in pixels through a linear probe fitted on
    training windows, plus ``probe_r2_layout`` (the other columns, where they vary). With another state:
    ``probe_r2`` of all its columns. With none: ``probe`` says it was skipped. With a latent: ``latent_report``.
    """
    was_training = model.training
    model.eval()
    va = draw_windows(val, val_windows, offset=20_000_003)
    s_va = encode_frames(model.encoder, va["obs"], device)
    h = min(horizon, va["action"].shape[1])
    actions = torch.from_numpy(va["action"][:, :h]).to(device)
    pred = model.predict_windows(s_va[:, :h + 1].to(device), actions)[:, -1].cpu()
    report = {f"pred_error_repr_h{h}": float((pred - s_va[:, h]).norm(dim=-1).mean()),
              f"copy_error_repr_h{h}": float((s_va[:, 0] - s_va[:, h]).norm(dim=-1).mean())}
    if va["state"].shape[-1] == 0:
        report["probe"] = "skipped: the data has no true state"
    else:
        tr = draw_windows(train, probe_windows, offset=10_000_019)
        s_tr = encode_frames(model.encoder, tr["obs"], device).flatten(0, 1)
        report.update(_probe_report(s_tr, torch.from_numpy(tr["state"]).flatten(0, 1), s_va, pred,
                                    torch.from_numpy(va["state"]), h, tuple(state_names[:2]) == POSITION))
    if model.predictor.latent is not None:
        report.update(latent_report(model, s_va[:, 0].to(device), model.normalise(actions[:, 0]), s_va[:, 1].to(device)))
    std = s_va.flatten(0, 1).std(0)
    report.update(embedding_std=[round(float(v), 4) for v in std], embedding_std_min=float(std.min()),
                  effective_rank=effective_rank(s_va.flatten(0, 1)))
    model.train(was_training)
    return report


def latent_report(model: JEPA, s: torch.Tensor, a: torch.Tensor, nxt: torch.Tensor, seed: int = 0) -> dict:
    """How much of the future the latent carries (Sec. 4.5): the free energy ``min_z E + beta R`` of one-step
    transitions ``s (N, D), a (N, A) -> nxt (N, D)`` against the true next state and against a shuffled one.

    ``latent_energy_gap`` is the mean difference; ``latent_energy_gap_ratio`` divides it by the mean squared
    distance (per dimension) between true and shuffled targets: near 1 when ``z`` explains only what it should,
    near 0 when ``z`` can explain any next state (the energy no longer tells futures apart). A discrete latent
    also reports the entropy of the values chosen (``latent_usage_entropy``, nats; ``log k`` when all are used).
    """
    latent, beta = model.predictor.latent, model.cfg.predictor.latent_weight
    sparsity = model.cfg.predictor.latent_sparsity
    shuffled = nxt[torch.randperm(nxt.shape[0], generator=torch.Generator().manual_seed(seed)).to(nxt.device)]
    f_true = latent.free_energy(model.predictor, s, a, nxt, beta, sparsity=sparsity)
    f_shuf = latent.free_energy(model.predictor, s, a, shuffled, beta, sparsity=sparsity)
    gap = float((f_shuf - f_true).mean())
    out = {"latent_free_energy": float(f_true.mean()), "latent_energy_gap": gap,
           "latent_energy_gap_ratio": gap / max(float((nxt - shuffled).pow(2).mean()), 1e-12)}
    if latent.kind == "discrete":
        e = (latent.candidates(model.predictor, s, a) - nxt[:, None]).pow(2).mean(-1)
        e = e + sparsity * latent.sparse_cost(e) - beta * torch.log_softmax(latent.prior_params(s, a), -1)
        freq = torch.bincount(e.argmin(1), minlength=latent.dim).double() / e.shape[0]
        out["latent_usage_entropy"] = float(-(freq * freq.clamp_min(1e-12).log()).sum())
    return out


def _probe_report(s_tr: torch.Tensor, y_tr: torch.Tensor, s_va: torch.Tensor, pred: torch.Tensor, y_va: torch.Tensor,
                  h: int, positional: bool) -> dict:
    """Linear probes of the true state: the agent's position (and the layout) in amia's worlds, else every column."""
    if not positional:
        probe = LinearProbe.fit(s_tr, y_tr)
        return {"probe_r2": r2_score(probe(s_va.flatten(0, 1)), y_va.flatten(0, 1))}
    probe = LinearProbe.fit(s_tr, y_tr[:, :2])
    report = {"probe_r2": r2_score(probe(s_va.flatten(0, 1)), y_va.flatten(0, 1)[:, :2])}
    if y_tr.shape[1] > 2 and y_tr[:, 2:].std(0).min() > 1e-3:  # the maze's state is (x, y) only
        layout = LinearProbe.fit(s_tr, y_tr[:, 2:])
        report["probe_r2_layout"] = r2_score(layout(s_va.flatten(0, 1)), y_va.flatten(0, 1)[:, 2:])
    target = y_va[:, h, :2]
    report[f"pred_error_px_h{h}"] = float((probe(pred) - target).norm(dim=-1).mean())
    report[f"copy_error_px_h{h}"] = float((probe(s_va[:, 0]) - target).norm(dim=-1).mean())
    return report


POSITIONS = ("x", "y", "cx", "cy")  # what the position read-out reads: the agent, then a chaser where there is one


@torch.no_grad()
def fit_position_probe(model: JEPA, data_path, device: torch.device, windows: int = 512, seed: int = 0) -> LinearProbe:
    """A linear probe from the model's states to the positions in the file's state (``POSITIONS`` present in its
    ``state_names``, in that order: the agent's (x, y), and the chaser's (cx, cy) where there is one), fit on
    frames of a trajectory file."""
    names = read_info(data_path).state_names
    columns = [names.index(n) for n in POSITIONS if n in names]
    if columns[:2] != [0, 1]:
        raise ValueError(f"{data_path}: a position read-out needs a state that starts with x, y; it has {names}")
    sampler = WindowSampler(data_path, 1, 256, seed=seed)
    batch = draw_windows(sampler, windows)
    states = encode_frames(model.encoder, batch["obs"], device).flatten(0, 1)
    return LinearProbe.fit(states, torch.from_numpy(batch["state"]).flatten(0, 1)[:, columns])
