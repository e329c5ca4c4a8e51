"""Which inferred labels cost success? The labels of `amia label`, with the true actions put back where the agent
moved, or where it did not (TwoRooms, Mode-2, a training seed).

    python benchmarks/label_oracle.py --labels runs/vb/pseudo.h5 --data runs/vb/data.h5 --work runs/vb

The file ``--labels`` (made by `amia label` from ``--data``: the labelled episodes ``copies`` times, then every
episode of ``--data`` with inferred actions) is trained on as it is, and in two variants of it: the true actions
of ``--data`` put back on the transitions where the agent did not move (a push that a wall stopped, whose action
the frames do not show), on those where it moved, or only on the still transitions whose label is wrong (replayed
from the true state in the true world, it moves the agent). A fourth arm trains on ``--data`` itself. Each arm is the
default `amia train` and the default Mode-2 on ``--episodes`` episodes of ``--seed`` (a training seed; 5 unless
told). Runs are kept in ``--work`` and reused. Where the agent moved is read from the true states, so this is a
diagnosis of the labels, not a way to make them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ENV = "amia/TwoRooms-v0"
STILL_PX = 0.05  # a transition whose agent moved less than this did not move
WRONG_PX = 0.3  # a still transition's label that moves the agent further than this in the true world is wrong


def still_transitions(data: str) -> np.ndarray:
    """``(N,)`` for every frame of ``data``: its transition exists and moved the agent less than ``STILL_PX``."""
    from amia.data.dataset import read_info

    info = read_info(data)
    with h5py.File(info.path, "r") as f:
        pos = f["state"][:, :2]
    last = np.zeros(info.frames, bool)
    last[info.episode_offsets[1:] - 1] = True
    move = np.full(info.frames, np.inf)
    move[:-1] = np.linalg.norm(pos[1:] - pos[:-1], axis=1)
    return (move < STILL_PX) & ~last


def wrong_stops(labels: Path, data: str, still: np.ndarray) -> np.ndarray:
    """``(N,)``: the still transitions of ``data`` whose label, replayed from the true state in the true world, moves
    the agent more than ``WRONG_PX`` (the label does not reproduce the stop)."""
    from amia.data.dataset import read_info
    from amia.envs.geometry import move_points
    from amia.envs.rooms import RoomsSpec, wall_rectangles

    meta = read_info(labels).meta["labelled_by"]
    start = meta["labelled_frames"] * meta["config"]["copies"]
    with h5py.File(data, "r") as f:
        pos, n = f["state"][:, :2].astype(np.float64), len(f["action"])
    with h5py.File(labels, "r") as f:
        label = f["action"][start:start + n]
    t = np.flatnonzero(still)
    spec = RoomsSpec()
    rects = wall_rectangles(spec, np.full(len(t), spec.wall_x), np.full(len(t), spec.door_y))
    replayed = move_points(pos[t], label[t], rects, spec.max_step, spec.agent_radius)
    wrong = np.zeros(n, bool)
    wrong[t] = np.linalg.norm(replayed - pos[t + 1], axis=1) > WRONG_PX
    return wrong


def with_true_actions(labels: Path, data: str, where: np.ndarray, out: Path) -> None:
    """A copy of ``labels`` whose inferred actions of ``data``'s transitions ``where`` are the true ones."""
    from amia.data.dataset import read_info

    meta = read_info(labels).meta["labelled_by"]
    start = meta["labelled_frames"] * meta["config"]["copies"]
    if meta["config"].get("max_std", 0) > 0 and not meta["config"].get("bins", 0):
        raise SystemExit(f"{labels}: its episodes were cut at unsure transitions; give a file labelled throughout")
    with h5py.File(data, "r") as f:
        truth = f["action"][()]
    shutil.copy(labels, out)
    with h5py.File(out, "r+") as f:
        actions = f["action"][()]
        part = actions[start:start + len(truth)]
        if part.shape != truth.shape:
            raise SystemExit(f"{labels}: expected {len(truth)} frames of {data} after the labelled episodes")
        part[where] = truth[where]
        actions[start:start + len(truth)] = part
        f["action"][...] = actions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", required=True, help="a file written by `amia label` from --data")
    p.add_argument("--data", required=True, help="the TwoRooms dataset the labels were inferred for")
    p.add_argument("--work", default="runs/label_oracle", help="where the variants and runs are kept (and reused)")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=5, help="evaluation seed (a training seed: 5)")
    p.add_argument("--out", default="benchmarks/results/label_oracle_cpu.json")
    args = p.parse_args()

    from amia.eval.protocol import EvalConfig, evaluate
    from amia.infra.provenance import git_revision, machine
    from amia.training.world_model import default_config, train

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    still = still_transitions(args.data)
    wrong = wrong_stops(Path(args.labels), args.data, still)
    files = {"labels": Path(args.labels), "true_where_still": work / "true_where_still.h5",
             "true_where_moved": work / "true_where_moved.h5", "true": Path(args.data),
             "true_where_still_and_wrong": work / "true_where_still_and_wrong.h5"}
    for name, where in (("true_where_still", still), ("true_where_moved", ~still), ("true_where_still_and_wrong", wrong)):
        if not files[name].exists():
            with_true_actions(files["labels"], args.data, where, files[name])
    doc = {"benchmark": "label_oracle", "command": " ".join(["benchmarks/label_oracle.py", *sys.argv[1:]]),
           "labels": args.labels, "data": args.data, "episodes": args.episodes, "seed": args.seed,
           "still_share": float(still.mean()), "wrong_share_of_still": float(wrong.sum() / max(1, still.sum())),
           "git_rev": git_revision(), "machine": machine(), "arms": {}}
    for name, path in files.items():
        run = work / f"run_{name}"
        train(ENV, run, default_config(ENV), data=str(path), progress=True)
        result = evaluate(run, EvalConfig(episodes=args.episodes, seed=args.seed, timing_calls=0), progress=False)
        doc["arms"][name] = {"run": str(run), "success": result["success_rate"],
                             "strict_success": result["strict_success_rate"]}
        print(name, doc["arms"][name], flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
