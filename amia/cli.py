"""The ``amia`` command: thin wrappers over the library (``amia COMMAND --help`` for each)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from amia.config import apply_overrides, load_yaml

DEFAULT_ENV = "amia/TwoRooms-v0"


def _train_config(args):
    from amia.train import TrainConfig

    cfg = load_yaml(TrainConfig, args.config) if args.config else TrainConfig()
    return apply_overrides(cfg, args.overrides)


def cmd_collect(args) -> None:
    from amia.data import CollectConfig, collect

    cfg = CollectConfig(episodes=args.episodes, steps=args.steps, policy=args.policy, seed=args.seed)
    if Path(args.out).exists() and not args.force:
        raise FileExistsError(f"{args.out} exists; pass --force to replace it")
    path = collect(args.env, args.out, cfg, progress=not args.quiet)
    print(f"wrote {cfg.episodes} episodes of {cfg.steps} steps to {path}")


def cmd_train(args) -> None:
    from amia.train import train

    metrics = train(args.env, args.out, _train_config(args), data=args.data, device=args.device,
                    progress=not args.quiet)
    if metrics:
        print_metrics(metrics)


def cmd_demo(args) -> None:
    """The main job on the built-in default world: collect, train, report (resumable like ``train``)."""
    from amia.train import TrainConfig, train

    print(f"amia demo: collect reward-free data in {args.env}, train a JEPA world model in {args.out}")
    metrics = train(args.env, args.out, TrainConfig(), device=args.device, progress=not args.quiet)
    print("\nworld model diagnostics (held-out episodes):")
    print_metrics(metrics)
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2))
        print(f"wrote {args.json}")


def cmd_info(args) -> None:
    from amia.data import read_info

    info = read_info(args.file)
    lengths = info.episode_offsets[1:] - info.episode_offsets[:-1]
    print(f"{info.path}: env {info.env_id}, {info.episodes} episodes, {info.frames} frames "
          f"(episode length {lengths.min()}..{lengths.max()}), obs {info.obs_shape} uint8, "
          f"action dim {info.action_dim}, state {', '.join(info.state_names)}")


def print_metrics(metrics: dict) -> None:
    keys = [k for k in ("env_id", "steps", "train_seconds", "samples_per_s", "probe_r2", "probe_r2_layout",
                        "pred_error_px_h16", "copy_error_px_h16", "embedding_std_min", "effective_rank") if k in metrics]
    width = max(map(len, keys))
    for k in keys:
        v = metrics[k]
        print(f"  {k:<{width}}  {v:.4g}" if isinstance(v, float) else f"  {k:<{width}}  {v}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="amia", description="JEPA world models and planning agents (LeCun, 2022).")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("collect", help="collect reward-free trajectories into an HDF5 file")
    c.add_argument("--env", default=DEFAULT_ENV, help="world id (default %(default)s)")
    c.add_argument("--episodes", type=int, default=1000)
    c.add_argument("--steps", type=int, default=100, help="actions per episode")
    c.add_argument("--policy", default="drift", help="drift (PLDM random walk) or uniform")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True, help="trajectory file to write")
    c.add_argument("--force", action="store_true", help="replace an existing file")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=cmd_collect)

    t = sub.add_parser("train", help="train a JEPA world model (collects data first when --data is not given)")
    t.add_argument("--env", default=DEFAULT_ENV, help="world id (default %(default)s)")
    t.add_argument("--data", help="trajectory file (default: collect RUN_DIR/data.h5)")
    t.add_argument("--out", required=True, help="run directory; rerunning the same command resumes it")
    t.add_argument("--config", help="YAML preset (see configs/)")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. steps=500 jepa.loss.cov=4")
    t.set_defaults(func=cmd_train)

    d = sub.add_parser("demo", help="the main job on the default world: collect, train, report")
    d.add_argument("--env", default=DEFAULT_ENV, help="world id (default %(default)s)")
    d.add_argument("--out", default="runs/demo", help="run directory (default %(default)s)")
    d.add_argument("--device", default="cpu")
    d.add_argument("--json", help="also write the results to this JSON file")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("info", help="check a trajectory file and summarise it")
    i.add_argument("file")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"amia: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
