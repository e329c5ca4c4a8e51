"""Why the chaser's latent fails: four measurements on a trained Chaser-v0 run (its frozen encoder).

    python benchmarks/chaser_latent.py --run runs/chaser --data data/chaser.h5 --out benchmarks/results/chaser_latent_cpu.json

1. ``heading_accuracy``: the chaser's heading at a step (8 compass directions), decoded from the encoded pair
   ``(s[t], s[t+1] - s[t])`` by a linear classifier and by an MLP (trained on episodes 0-399, tested on the
   last 100): is the information in the representation?
2. ``energy``: the held-out one-step energy of an MLP predictor on the frozen states, on the chaser's share of the
   state, without and with the true heading as input: how much of the chaser's effect does the heading explain?
3. ``model``: the run's own latent values: which value wins each held-out transition (least energy), the
   winners' heading purity (the share of transitions in each value's most common heading; chance is 1/8), and
   how far each value moves the chaser (read by the run's linear probe).
4. ``frozen_search``: relaxed winner-take-all from scratch on the frozen states (the same predictor and latent as
   training, ``--revive`` share): the heading purity it reaches.
Steps where the chaser did not move 1.4 px (a wall, a capture) are left out of the heading figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def load(model, data: str, first: int, last: int) -> dict:
    """Encoded transitions of episodes ``first..last-1`` (each 100 steps): states, actions, headings (8: none)."""
    with h5py.File(data) as f:
        off, n = f["episode_offsets"][:], last - first
        rows = slice(off[first], off[last])
        obs = f["obs"][rows].reshape(n, 101, *f["obs"].shape[1:])
        state = f["state"][rows].reshape(n, 101, -1)
        action = f["action"][rows].reshape(n, 101, -1)[:, :100]
    with torch.no_grad():
        s = torch.cat([model.encoder.encode(torch.from_numpy(obs[i:i + 25])) for i in range(0, n, 25)])
    move = (state[:, 1:, 2:4] - state[:, :-1, 2:4]).reshape(-1, 2)
    heading = np.rint(np.arctan2(move[:, 1], move[:, 0]) / (np.pi / 4)).astype(int) % 8
    heading = np.where(np.linalg.norm(move, axis=1) < 1.4, 8, heading)
    return {"s0": s[:, :-1].flatten(0, 1), "s1": s[:, 1:].flatten(0, 1), "move": move,
            "a": torch.from_numpy(action).flatten(0, 1).float(), "heading": torch.from_numpy(heading)}


def fit(net: torch.nn.Module, loss_fn, n: int, steps: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(steps):
        idx = torch.randint(0, n, (512,))
        loss = loss_fn(net, idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def mlp(i: int, o: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(i, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, o))


def heading_accuracy(tr: dict, te: dict, steps: int) -> dict:
    def features(d):
        return torch.cat([d["s0"], d["s1"] - d["s0"]], -1)
    ok_tr, ok_te = tr["heading"] < 8, te["heading"] < 8
    x, y, xt, yt = features(tr)[ok_tr], tr["heading"][ok_tr], features(te)[ok_te], te["heading"][ok_te]
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x, xt = (x - mu) / sd, (xt - mu) / sd
    out = {}
    for name, net in (("linear", torch.nn.Linear(x.shape[1], 8)), ("mlp", mlp(x.shape[1], 8))):
        fit(net, lambda n, i: torch.nn.functional.cross_entropy(n(x[i]), y[i]), len(x), steps)
        with torch.no_grad():
            out[name] = float((net(xt).argmax(1) == yt).float().mean())
    return out


def heading_energy(tr: dict, te: dict, steps: int, chaser: slice) -> dict:
    out = {}
    for name, use in (("without_heading", False), ("with_true_heading", True)):
        def x(d, i=slice(None), use=use):
            parts = [d["s0"][i], d["a"][i]] + ([torch.nn.functional.one_hot(d["heading"][i], 9).float()] if use else [])
            return torch.cat(parts, -1)
        net = mlp(x(tr).shape[1], tr["s0"].shape[1])
        fit(net, lambda n, i, x=x: (tr["s0"][i] + n(x(tr, i)) - tr["s1"][i]).pow(2).mean(), len(tr["s0"]), steps)
        with torch.no_grad():
            r = (te["s0"] + net(x(te)) - te["s1"]).pow(2)
        out[name] = {"all": float(r.mean()), "chaser_share": float(r[:, chaser].mean())}
    return out


def purity(winners: np.ndarray, heading: np.ndarray, k: int) -> tuple[float, list[list[int]]]:
    tab = np.zeros((8, k), int)
    ok = heading < 8
    np.add.at(tab, (heading[ok], winners[ok]), 1)
    return float(tab.max(0).sum() / max(1, tab.sum())), tab.tolist()


@torch.no_grad()
def model_values(model, probe, te: dict) -> dict:
    latent = model.predictor.latent
    cand = latent.candidates(model.predictor, te["s0"], te["a"])
    win = (cand - te["s1"][:, None]).pow(2).mean(-1).argmin(1).numpy()
    moved = (probe(cand) - probe(te["s0"])[:, None])[..., 2:4].norm(dim=-1)  # (N, k)
    ok = te["heading"].numpy() < 8
    p, tab = purity(win, te["heading"].numpy(), latent.dim)
    return {"heading_purity": p, "winners_by_heading": tab,
            "chaser_move_px_per_value": [round(float(v), 3) for v in moved[torch.from_numpy(ok)].mean(0)]}


def frozen_search(model, tr: dict, te: dict, steps: int, revive: float) -> dict:
    from amia.models.predictor import Predictor, PredictorConfig

    cfg = model.predictor.cfg
    torch.manual_seed(0)
    pred = Predictor(PredictorConfig(hidden=cfg.hidden, layers=cfg.layers, latent="discrete", latent_dim=cfg.latent_dim),
                     tr["s0"].shape[1], tr["a"].shape[1])
    latent, g = pred.latent, torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(pred.parameters(), 1e-3)
    for i in range(steps):
        idx = torch.randint(0, len(tr["s0"]), (512,))
        s0, a, s1 = tr["s0"][idx], tr["a"][idx], tr["s1"][idx]
        if revive and 0 < i < steps / 2 and i % 100 == 0:
            latent.revive(pred, torch.bincount(latent.winners(pred, s0, a, s1), minlength=latent.dim).float(), revive, g)
        _, e, r = latent.step(pred, s0, a, s1, cfg.latent_weight)
        loss = e.mean() + cfg.latent_weight * r.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        win = latent.winners(pred, te["s0"], te["a"], te["s1"]).numpy()
    p, tab = purity(win, te["heading"].numpy(), latent.dim)
    return {"steps": steps, "revive": revive, "heading_purity": p, "winners_by_heading": tab}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--revive", type=float, default=0.03)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    from amia.infra.host import set_threads
    from amia.infra.provenance import git_revision, machine
    from amia.infra.run_dir import load_model, load_parts

    set_threads(args.threads)
    model, _ = load_model(args.run)
    model.eval()
    probe = load_parts(args.run, model.predictor.state_dim)["position"]
    if probe is None or model.predictor.latent is None or model.predictor.latent.kind != "discrete":
        raise SystemExit(f"{args.run}: needs a discrete latent and a position probe (amia probe --run {args.run})")
    chaser = slice(model.encoder.streams[0].cfg.dim, None) if hasattr(model.encoder, "streams") else slice(None)
    tr, te = load(model, args.data, 0, 400), load(model, args.data, 900, 1000)
    result = {"benchmark": "chaser_latent", "command": " ".join(sys.argv), "run": args.run, "git_rev": git_revision(),
              "machine": machine(), "heading_accuracy": heading_accuracy(tr, te, args.steps),
              "energy": heading_energy(tr, te, args.steps, chaser), "model": model_values(model, probe, te),
              "frozen_search": frozen_search(model, tr, te, args.steps, args.revive)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("heading_accuracy", "energy")}, indent=1))
    print("model purity", result["model"]["heading_purity"], "moves", result["model"]["chaser_move_px_per_value"])
    print("frozen search purity", result["frozen_search"]["heading_purity"])


if __name__ == "__main__":
    main()
