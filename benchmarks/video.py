"""How much labelled data does pretraining on frames alone save? (TwoRooms, Mode-2, the standard protocol)

One world model is pretrained on the default dataset's frames with its actions ignored (``amia pretrain``). For
each labelled fraction, the first episodes of the same file are post-trained onto it (``amia posttrain``), and the
same episodes train a model from scratch with actions (``amia train``, the default settings); every run is then
evaluated with the default planner on the same 200 episodes. The full action-labelled default is the scratch row at
100%. Runs are kept in ``--work`` and reused when the command is rerun (each part resumes where it stopped).

    python benchmarks/video.py --out benchmarks/results/video_cpu.json
    python benchmarks/video.py --fractions 0.02 --full-run runs/demo   # one fraction; reuse a default run as "full"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ENV = "amia/TwoRooms-v0"
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/video_bench", help="where the data and every run are kept (and reused)")
    p.add_argument("--data", help="the default TwoRooms dataset (default: collect it into --work)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.2, 1.0])
    p.add_argument("--full-run", help="an existing default run (`amia demo` / `amia train`) on the same data for 100%%")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0, help="evaluation seed (0: the standard episodes)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: OMP_NUM_THREADS, else every core)")
    p.add_argument("--planner", default="gd", help="the Mode-2 planner of every evaluation (gd: the default; mppi)")
    p.add_argument("--plot", default="docs/video_curve.png", help="the curve as a picture ('' for none)")
    p.add_argument("--out", default="benchmarks/results/video_cpu.json")
    p.add_argument("--add", action="store_true",
                   help="keep the rows of --out for fractions not run now (each row names its runs and git revision)")
    p.add_argument("--method", choices=["init", "label", "posttrain"], default="init",
                   help="label: an inverse model (on the pretrained states, or with --label reads=pixels on the "
                        "frames, which needs no pretraining) labels every frame (`amia label`), then the "
                        "default training on them; init: train with actions starting from the pretrained weights "
                        "(`amia train init=RUN`); posttrain: learn only the action map on the frozen model "
                        "(`amia posttrain`)")
    p.add_argument("--posttrain", nargs="*", default=[], metavar="key=value", help="overrides of PosttrainConfig")
    p.add_argument("--label", nargs="*", default=[], metavar="key=value",
                   help="overrides of LabelConfig; judge=scratch: the run trained from scratch on the same labelled "
                        "episodes judges the drawn labels (bins=, max_std=)")
    p.add_argument("--label-init", action="store_true",
                   help="with --method label: the training on the labels starts from the pretrained weights "
                        "(`amia train init=RUN`): pretrained on the frames, post-trained with the labels")
    p.add_argument("--train", nargs="*", default=[], metavar="key=value",
                   help="overrides of the TrainConfig of the run trained on the labels or from the pretrained weights "
                        "(not of the run from scratch); they name its directory, e.g. label_init_20_steps3000")
    p.add_argument("--maze", action="store_true",
                   help="run the H-JEPA from video on Maze-v0 instead (level 1 from frame-pretrained weights, level 2 "
                        "with latent abstract actions, hierarchical Mode-2 with configs/maze_eval.yaml) into "
                        "--maze-out, whose fields the TwoRooms JSON then carries")
    p.add_argument("--maze-work", help="where the maze part keeps its data and runs (default: --work/maze)")
    p.add_argument("--maze-out", default="benchmarks/results/video_maze_cpu.json")
    p.add_argument("pretrain", nargs="*", metavar="key=value", help="overrides of the pretraining config")
    args = p.parse_args()

    from amia.data import CollectConfig, collect
    from amia.data.dataset import read_info
    from amia.eval.protocol import EvalConfig, evaluate
    from amia.infra.provenance import git_revision, machine

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.maze:
        maze = {"benchmark": "video_maze", "command": " ".join(["benchmarks/video.py", *sys.argv[1:]]),
                "git_rev": git_revision(), "machine": machine(),
                **maze_part(args, Path(args.maze_work) if args.maze_work else work / "maze")}
        Path(args.maze_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.maze_out).write_text(json.dumps(maze, indent=2))
        return
    data = Path(args.data) if args.data else work / "data.h5"
    if not data.exists():
        collect(ENV, data, CollectConfig())
    episodes = read_info(data).episodes
    doc = {"benchmark": "video", "command": " ".join(["benchmarks/video.py", *sys.argv[1:]]), "env": ENV,
           "data": str(data), "episodes": args.episodes, "seed": args.seed, "git_rev": git_revision(),
           "machine": machine(), "planner": args.planner, "method": args.method, "label_config": args.label,
           "label_init": args.label_init, "train_overrides": args.train,
           "curve": [], **maze_fields(Path(args.maze_out))}

    def save() -> None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=2))

    def success(run: Path) -> float:
        r = evaluate(run, EvalConfig(episodes=args.episodes, seed=args.seed, timing_calls=0, planner=args.planner),
                     progress=False)
        return r["success_rate"]

    video = work / "video"
    if args.add and Path(args.out).exists():  # rows of earlier runs keep the command that made them
        old = json.loads(Path(args.out).read_text())
        doc["curve"] = [{"command": old.get("command"), **r} for r in old["curve"] if r["fraction"] not in args.fractions]
    doc.update(pretrain_part(args, video, data))
    save()
    for fraction in args.fractions:
        row = fraction_row(args, work, data, video, episodes, fraction, success)
        print(json.dumps(row), flush=True)
        doc["curve"] = sorted([*doc["curve"], {**row, "git_rev": doc["git_rev"], "command": doc["command"]}],
                              key=lambda r: r["fraction"])
        by = {r["fraction"]: r for r in doc["curve"]}
        if 0.02 in by:
            doc["success_video_2pct"], doc["success_scratch_2pct"] = by[0.02]["success_video"], by[0.02]["success_scratch"]
        if 1.0 in by:
            doc["success_full"] = by[1.0]["success_scratch"]
        save()
    if args.plot:
        plot(doc["curve"], ROOT / args.plot)


def pretrain_part(args, video: Path, data: Path) -> dict:
    """Pretrain on the frames alone (reused when finished), unless the method reads no pretrained state (the pixel
    inverse model of ``--method label --label reads=pixels``)."""
    from amia.infra.config import apply_overrides
    from amia.training.world_model import PretrainConfig, train

    if args.method == "label" and "reads=pixels" in args.label and not args.label_init:
        return {"pretrain": None}
    pre = train(None, video, apply_overrides(PretrainConfig(threads=args.threads), args.pretrain), data=str(data),
                progress=True)
    return {"pretrain": pre, "pretrain_seconds": pre["train_seconds"]}


def fraction_row(args, work: Path, data: Path, video: Path, episodes: int, fraction: float, success) -> dict:
    """Post-train the pretrained run and train a run from scratch on the first ``fraction`` of the episodes; both
    evaluated by ``success(run)``."""
    from amia.data.dataset import read_info, take_episodes
    from amia.infra.config import apply_overrides
    from amia.training.inverse_labels import LabelConfig, label_frames
    from amia.training.posttrain import PosttrainConfig, posttrain
    from amia.training.world_model import default_config, train

    n = max(2, round(fraction * episodes))
    tag = "".join("_" + o.replace("=", "") for o in args.train)
    labelled = work / f"labelled_{n}.h5"
    if not labelled.exists():
        take_episodes(data, labelled, n)
    labelled_data = str(labelled if n < episodes else data)
    cfg = apply_overrides(default_config(ENV), [f"threads={args.threads}"])
    scratch, scratch_seconds = work / f"scratch_{n}", None
    if fraction == 1.0 and args.full_run:
        scratch = Path(args.full_run)
    else:  # first: with --label judge=scratch it judges the labels
        scratch_seconds = train(ENV, scratch, cfg, data=labelled_data, progress=True).get("train_seconds")
    if args.method == "label" and n >= episodes:  # every episode has its actions: nothing to label
        return {"fraction": fraction, "labelled_episodes": n, "method": args.method, "success_video": None,
                "video_run": None, "scratch_seconds": scratch_seconds, "success_scratch": success(scratch),
                "scratch_run": str(scratch)}
    if args.method == "label":  # every frame labelled by the inverse model, then the default training on them
        pseudo, post = work / f"pseudo_{n}.h5", work / (f"label_init_{n}{tag}" if args.label_init else f"label_{n}{tag}")
        if not pseudo.exists():
            reader = None if "reads=pixels" in args.label else video
            overrides = [f"judge={scratch}" if o == "judge=scratch" else o for o in args.label]
            label_frames(reader, labelled_data, pseudo, frames=data,
                         cfg=apply_overrides(LabelConfig(threads=args.threads), overrides), progress=True)
        init = [f"init={video}"] if args.label_init else []
        metrics = train(ENV, post, apply_overrides(cfg, [*init, *args.train]), data=str(pseudo), progress=True)
        metrics["label"] = read_info(pseudo).meta["labelled_by"]
    elif args.method == "init":  # the default training on the labelled episodes, started from the pretrained weights
        post = work / f"init_{n}{tag}"
        metrics = train(ENV, post, apply_overrides(cfg, [f"init={video}", *args.train]), data=labelled_data, progress=True)
    else:  # the action map (amia posttrain) on the frozen pretrained model
        post = work / f"post_{n}"
        metrics = posttrain(video, labelled, post, apply_overrides(PosttrainConfig(threads=args.threads),
                                                                   args.posttrain), progress=True)
    row = {"fraction": fraction, "labelled_episodes": n, "method": args.method,
           "video_seconds": metrics["train_seconds"], "success_video": success(post), "video_run": str(post)}
    if "label" in metrics:
        keys = ("inverse_model", "frames_r2", "kept_transitions", "drawn_transitions", "seconds")
        row["label"] = {k: metrics["label"][k] for k in keys if k in metrics["label"]}
    if scratch_seconds is not None:
        row["scratch_seconds"] = scratch_seconds
    row["success_scratch"] = success(scratch)
    row["scratch_run"] = str(scratch)
    return row


MAZE = "amia/Maze-v0"
MAZE_FIELDS = ("maze_hierarchical_video_level2", "maze_probe_px_64_video", "maze_probe_px_64_actions")


def maze_fields(path: Path) -> dict:
    """The maze part's headline fields, from its own file (``--maze``), or empty where it has not been run."""
    maze = json.loads(path.read_text()) if path.exists() else {}
    return {**{k: maze.get(k) for k in MAZE_FIELDS}, "maze_file": str(path) if maze else None}


def maze_part(args, work: Path) -> dict:
    """Maze-v0's H-JEPA from video: pretrain on the default maze data's frames, train level 1 with actions from those
    weights, then level 2 with abstract actions inferred from level-2 states (it reads no action), their prior and
    its critic; hierarchical Mode-2 on the standard episodes, planning the latents within their prior. Beside it, a
    level 2 with encoded actions on the same level 1, for its 64-step probe error."""
    import shutil

    from amia.data import CollectConfig, collect
    from amia.eval.protocol import EvalConfig, evaluate
    from amia.infra.config import apply_overrides, load_yaml
    from amia.models.level2 import HJEPAConfig
    from amia.training.critics import train_level2_critic
    from amia.training.level2 import train_level2
    from amia.training.world_model import WORLD_PRESETS, PretrainConfig, default_config, train

    work.mkdir(parents=True, exist_ok=True)
    data = work / "data.h5"
    if not data.exists():
        collect(MAZE, data, CollectConfig())
    pre = train(None, work / "video", apply_overrides(PretrainConfig(threads=args.threads), WORLD_PRESETS[MAZE]),
                data=str(data), progress=True)
    level1 = work / "level1"
    cfg = apply_overrides(default_config(MAZE), [f"threads={args.threads}", f"init={work / 'video'}"])
    metrics1 = train(MAZE, level1, cfg, data=str(data), progress=True)
    actions_run = work / "level1_actions"  # the same level 1, with the ordinary action-encoded level 2
    if not actions_run.exists():
        shutil.copytree(level1, actions_run, ignore=shutil.ignore_patterns("level2*", "tb"))
    with_actions = train_level2(actions_run, HJEPAConfig(threads=args.threads), progress=True)
    latent = train_level2(level1, HJEPAConfig(abstract="latent", threads=args.threads), progress=True)
    train_level2_critic(level1, progress=True)
    eval_cfg = apply_overrides(load_yaml(EvalConfig, ROOT / "configs/maze_eval.yaml"),
                               [f"episodes={args.episodes}", f"seed={args.seed}"])
    result = evaluate(level1, eval_cfg, progress=True)
    return {"maze_hierarchical_video_level2": result["success_rate"],
            "maze_strict_video_level2": result["strict_success_rate"],
            "maze_level2_prior_spread": result["level2_prior_spread"],
            "maze_probe_px_64_video": latent["horizon_report"]["level2_pred_error_px"],
            "maze_probe_px_64_actions": with_actions["horizon_report"]["level2_pred_error_px"],
            "maze_copy_px_64": latent["horizon_report"]["copy_error_px"],
            "maze_pretrain_seconds": pre["train_seconds"], "maze_level1_seconds": metrics1["train_seconds"],
            "maze_level1_probe_r2": metrics1.get("probe_r2"), "maze_runs": str(work), "maze_eval": result}


def plot(curve: list[dict], path: Path) -> None:
    """Success against the labelled fraction, with and without pretraining on frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(curve, key=lambda r: r["fraction"])
    x = [100 * r["fraction"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(x, [r["success_video"] for r in rows], "o-", label="pretrained on frames, then post-trained")
    ax.plot(x, [r["success_scratch"] for r in rows], "s--", label="trained from scratch with actions")
    ax.set(xscale="log", xlabel="episodes with actions (% of 1,000)", ylabel="success (200 episodes)", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
