"""Does the world model see walls? Open-loop predictions of a straight drive at the goal, where walls stop it.

    python benchmarks/blocked_rollouts.py --runs runs/tworooms runs/wall

For each evaluation episode (seed 0) the agent drives at full speed straight toward its goal for ``--steps``
steps; the true world stops it at walls. The model rolls the same actions out from the first frame and a
linear probe (fit on the run's data) reads the predicted positions. Reports the mean probe error of the
predicted position against the true one, split by whether a wall stopped the drive, and how often the
prediction is closer to the straight, wall-ignoring line than to the truth.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def blocked_report(run: str, episodes: int, steps: int) -> dict:
    from amia.envs import evaluation_set, make_world
    from amia.eval.diagnostics import fit_position_probe
    from amia.infra.run_dir import data_file, load_model

    model, saved = load_model(run)
    env = saved["env_id"]
    probe = fit_position_probe(model, data_file(run, saved), torch.device("cpu"))
    pairs = evaluation_set(env, episodes, 0)
    world = make_world(env, episodes)
    obs, _ = world.set_state(pairs["start"].astype(np.float64))
    d = pairs["goal"][:, :2] - pairs["start"][:, :2]
    action = d / np.abs(d).max(1, keepdims=True) * world.spec.max_step
    true = np.stack([world.step(action)[1]["state"][:, :2].copy() for _ in range(steps)], 1)
    with torch.no_grad():
        s0 = model.encoder(torch.from_numpy(obs))
        pred = probe(model.predictor.rollout(s0, torch.from_numpy(action[:, None].repeat(steps, 1)).float())).numpy()
    err = np.linalg.norm(pred - true, axis=-1)
    straight = pairs["start"][:, None, :2] + action[:, None] * np.arange(1, steps + 1)[None, :, None]
    blocked = np.linalg.norm(true[:, -1] - straight[:, -1], axis=-1) > 3
    to_line = np.linalg.norm(pred[:, -1] - straight[:, -1], axis=-1)
    return {"run": run, "env": env, "episodes": episodes, "steps": steps, "blocked_fraction": float(blocked.mean()),
            "error_px_blocked": {str(k): float(err[blocked, k - 1].mean()) for k in (4, 8, 16, steps)},
            "error_px_free": ({str(k): float(err[~blocked, k - 1].mean()) for k in (4, 8, 16, steps)}
                              if (~blocked).any() else None),
            "prediction_follows_straight_line": float((to_line[blocked] < err[blocked, -1]).mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--out", default="benchmarks/results/blocked_rollouts.json")
    args = p.parse_args()
    from amia.infra.provenance import git_revision

    results = [blocked_report(run, args.episodes, args.steps) for run in args.runs]
    for r in results:
        print(json.dumps(r))
    Path(args.out).write_text(json.dumps({"benchmark": "blocked_rollouts", "git_rev": git_revision(),
                                          "command": " ".join(["benchmarks/blocked_rollouts.py", *sys.argv[1:]]),
                                          "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
