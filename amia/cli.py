"""The ``amia`` command: thin wrappers over the library (``amia COMMAND --help`` for each)."""

from __future__ import annotations

import argparse
import errno
import json
import re
import sys
import traceback
from pathlib import Path

from amia.infra.config import apply_overrides, load_yaml
from amia.infra.validate import check_device, check_output_file

DEFAULT_ENV = "amia/TwoRooms-v0"
LEVEL2_PREFIX = "level2."  # `amia train --levels 2` overrides of amia.models.level2.HJEPAConfig
CRITIC2_PREFIX = "critic2."  # and of amia.training.critics.Level2CriticConfig
MINARI_PREFIX = "minari:"  # `amia convert` names a Minari dataset as minari:DATASET_ID
VIDEO_DATA = "video.h5"  # `amia pretrain --video`: the clips' frames, in the run directory
OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def _config(cls, args, overrides: list[str], **given):
    """``cls`` from ``--config FILE`` (or its defaults), then the options given on the line, then the overrides."""
    import dataclasses

    cfg = load_yaml(cls, args.config) if getattr(args, "config", None) else cls()
    cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if v is not None})
    return apply_overrides(cfg, overrides)


def _train_config(args):
    from amia.training.world_model import TrainConfig, default_config

    cfg = load_yaml(TrainConfig, args.config) if args.config else default_config(args.env)
    return apply_overrides(cfg, [o for o in args.overrides if not o.startswith((LEVEL2_PREFIX, CRITIC2_PREFIX))])


def _level2_config(args):
    """The ``HJEPAConfig`` and ``Level2CriticConfig`` of ``amia train --levels 2`` from the ``level2.KEY=value``
    and ``critic2.KEY=value`` overrides (``None, None`` for one level)."""
    from amia.models.level2 import HJEPAConfig
    from amia.training.critics import Level2CriticConfig

    given = [o[len(LEVEL2_PREFIX):] for o in args.overrides if o.startswith(LEVEL2_PREFIX)]
    given_critic = [o[len(CRITIC2_PREFIX):] for o in args.overrides if o.startswith(CRITIC2_PREFIX)]
    if args.levels == 1:
        if given or given_critic:
            raise ValueError(f"level2.* and critic2.* overrides ({', '.join(given + given_critic)}) need --levels 2")
        return None, None
    return (apply_overrides(HJEPAConfig(), given, LEVEL2_PREFIX),
            apply_overrides(Level2CriticConfig(), given_critic, CRITIC2_PREFIX))


def cmd_collect(args) -> None:
    """amia's own worlds by their fast batched path; any other registered Gymnasium id through its vector API."""
    from amia.data import CollectConfig, GymCollectConfig, collect, collect_gym
    from amia.envs import ENV_SPECS

    check_output_file(args.out, "--out", make_parents=True)
    if Path(args.out).exists() and not args.force:
        raise FileExistsError(f"--out {args.out}: the file exists; pass --force to replace it")
    if args.env in ENV_SPECS:
        cfg = CollectConfig(episodes=args.episodes, steps=args.steps, policy=args.policy or "drift", seed=args.seed)
        path = collect(args.env, args.out, cfg, progress=not args.quiet)
    else:
        cfg = GymCollectConfig(episodes=args.episodes, steps=args.steps, policy=args.policy or "smooth", seed=args.seed,
                               image_size=args.image_size, num_envs=args.num_envs, vectorization=args.vectorization,
                               repeat=args.repeat, imports=args.imports)
        path = collect_gym(args.env, args.out, cfg, progress=not args.quiet)
    print(f"wrote {cfg.episodes} episodes of at most {cfg.steps} steps to {path}")


def cmd_train(args) -> None:
    """Train level 1 (resuming it if interrupted); with ``--levels 2`` then level 2 on the frozen level 1."""
    from amia.infra import distributed
    from amia.training.world_model import finished_metrics, train

    if args.env is None:  # the data's env, whatever it is; amia's default world when collecting
        from amia.data import read_info

        args.env = read_info(args.data).env_id if args.data else DEFAULT_ENV
    check_device(args.device)
    cfg, (cfg2, critic_cfg) = _train_config(args), _level2_config(args)  # refuse bad level2.* keys before training
    metrics = None
    if cfg2 is not None:  # a finished level 1 is not retrained (nor re-diagnosed): go straight to level 2
        metrics = finished_metrics(args.env, args.out, cfg, args.data)
        if metrics:
            print(f"level 1 of {args.out} is finished ({metrics['steps']} steps); training level 2")
    if metrics is None:
        metrics = train(args.env, args.out, cfg, data=args.data, device=args.device, progress=not args.quiet)
        if metrics:
            print_metrics(metrics)
    if cfg2 is not None and distributed.rank() == 0 and "stopped_at" not in metrics:
        _train_level2(args, cfg2, critic_cfg)


def cmd_pretrain(args) -> None:
    """Train the world model on frames alone (video clips, or a trajectory file with its actions ignored)."""
    from amia.data.dataset import read_info
    from amia.training.world_model import WORLD_PRESETS, PretrainConfig, train

    check_device(args.device)
    cfg = _config(PretrainConfig, args, [])
    if args.data and not args.config:  # a world's own frames: that world's architecture (its preset)
        cfg = apply_overrides(cfg, WORLD_PRESETS.get(read_info(args.data).env_id, []))
    cfg = apply_overrides(cfg, args.overrides)
    data = args.data
    if args.video:
        from amia.data.video import write_video_dataset

        out, data = Path(args.out), Path(args.out) / VIDEO_DATA
        if not data.exists():
            if (out / "config.json").exists():
                raise ValueError(f"--out {out} holds a run but not its {VIDEO_DATA}; choose another --out")
            write_video_dataset(args.video, data, image_size=args.image_size, min_frames=cfg.window + 1,
                                progress=not args.quiet)
    metrics = train(None, args.out, cfg, data=str(data), device=args.device, progress=not args.quiet)
    if metrics:
        print_metrics(metrics)
        print(f"next: give it actions with `amia posttrain --run {args.out} --data LABELLED_FILE --out NEW_RUN`")


def cmd_posttrain(args) -> None:
    """Learn a pretrained run's map from real actions to its latent actions on a labelled file (a new run)."""
    from amia.training.posttrain import PosttrainConfig, posttrain

    cfg = _config(PosttrainConfig, args, args.overrides)
    metrics = posttrain(args.run, args.data, args.out, cfg, device=args.device, progress=not args.quiet)
    if metrics and "stopped_at" not in metrics:
        print_metrics(metrics)


def cmd_label(args) -> None:
    """Label a pretrained run's frames with actions read by an inverse model fitted on a few labelled episodes."""
    from amia.training.inverse_labels import LabelConfig, label_frames

    check_device(args.device)
    cfg = _config(LabelConfig, args, args.overrides)
    report = label_frames(args.run, args.data, args.out, args.frames, cfg, device=args.device, progress=not args.quiet)
    inverse = report["inverse_model"]
    print(f"  inverse model: r2 {inverse['train_r2']:.3f} on the labelled training episodes, {inverse['val_r2']:.3f} "
          f"held out" + (f"; {report['frames_r2']:.3f} on the frames' own actions" if "frames_r2" in report else ""))
    if "kept_transitions" in report:
        print(f"  kept {report['kept_transitions']:.1%} of the transitions (spread <= max_std {cfg.max_std}); "
              f"episodes are cut at the others")
    print(f"wrote {args.out}: {report['frames_episodes']} episodes labelled + {report['labelled_episodes']} with their "
          f"actions ({report['seconds']:.0f} s)")
    print(f"next: `amia train --data {args.out} --out NEW_RUN" + (f" init={args.run}`" if args.run else "`"))


def _train_level2(args, cfg2, critic_cfg) -> None:
    from amia.training.critics import train_level2_critic
    from amia.training.level2 import train_level2

    summary = train_level2(args.out, cfg2, device=args.device, progress=not args.quiet)
    if "stopped_at" in summary:
        return
    losses = ", ".join(f"{k} {v:.4g}" for k, v in summary["final_losses"].items())
    print(f"level 2: {summary['steps']} steps in {summary['seconds']:.0f} s; final losses {losses}")
    report = summary.get("horizon_report")
    if report:
        print(f"  position error after {report['horizon_steps']} steps, open loop: level 2 "
              f"{report['level2_pred_error_px']:.2f} px, level 1 {report['level1_pred_error_px']:.2f} px "
              f"(do-nothing {report['copy_error_px']:.2f} px)")
    print(f"wrote {Path(args.out) / 'level2.safetensors'} and level2.json")
    summary = train_level2_critic(args.out, critic_cfg, device=args.device, progress=not args.quiet)
    check = summary.get("check") or {}
    print(f"level-2 critic: {summary['steps']} steps in {summary['seconds']:.0f} s; final loss "
          f"{summary['final_loss']:.4g}" + (f"; rank correlation with the true shortest path "
                                           f"{check['spearman_critic_vs_geodesic']:.3f} (straight line "
                                           f"{check['spearman_straight_vs_geodesic']:.3f})" if check else ""))
    print(f"wrote {Path(args.out) / 'level2_critic.safetensors'} and level2_critic.json")


def cmd_demo(args) -> None:
    """The main job on the built-in default world: collect, train, evaluate Mode-2 (resumable like ``train``)."""
    from amia.eval.protocol import EvalConfig, evaluate
    from amia.training.world_model import default_config, train

    check_device(args.device)
    if args.json:
        check_output_file(args.json, "--json")
    eval_cfg = EvalConfig(episodes=args.episodes)
    print(f"amia demo: collect reward-free data in {args.env}, train a JEPA world model in {args.out}, "
          f"then reach {args.episodes} goals by Mode-2 planning")
    metrics = train(args.env, args.out, default_config(args.env), device=args.device, progress=not args.quiet)
    print("\nworld model diagnostics (held-out episodes):")
    print_metrics(metrics)
    result = evaluate(args.out, eval_cfg, args.device, progress=not args.quiet)
    print(f"\nMode-2 goal reaching ({result['planner']} planner, {result['episodes']} episodes, seed 0):")
    print_metrics(result)
    if args.json:
        write_json(args.json, {"world_model": metrics, "mode2": result})
        print(f"wrote {args.json}")


def cmd_eval(args) -> None:
    """The protocol with one actor (or, with ``--planner all``, one per planner); prints a table, writes files."""
    import dataclasses

    from amia.agent.load import load_agent
    from amia.eval.protocol import EvalConfig, evaluate_actor, evaluate_oracle
    from amia.infra.run_dir import read_config
    from amia.planning.planners import PLANNERS

    if not args.run and not (args.oracle and args.env):
        raise ValueError("amia eval needs --run RUN (or --oracle with --env ID)")
    if args.oracle and args.protocol == "goal-frame":
        raise ValueError("--oracle runs the start-goal protocol only")
    if args.protocol == "goal-frame":
        return cmd_eval_goal_frame(args)
    risk = [f"uncertainty.{k}={v}" for k, v in (("risk", args.risk), ("futures", args.futures)) if v is not None]
    base = _config(EvalConfig, args, risk + args.overrides, episodes=args.episodes, seed=args.seed, task=args.task,
                   mode=1 if args.reflex else args.mode, reflex=args.reflex or None,
                   policy_init=args.policy_init or None, critic_weight=args.critic_weight,
                   hierarchical=args.hierarchical or None,
                   planner=None if args.planner in (None, "all") else args.planner)
    check_device(args.device)
    for option in ("json", "gif", "plot"):  # before the long work, so that its results cannot be lost at the end
        if getattr(args, option):
            check_output_file(getattr(args, option), f"--{option}")
    env = args.env or read_config(args.run)["env_id"]
    names = PLANNERS if args.planner == "all" and base.mode == 2 else [base.planner]
    results = []
    for name in names:
        cfg = dataclasses.replace(base, planner=name)
        if args.oracle:
            row = evaluate_oracle(env, cfg, progress=not args.quiet)
        else:
            actor = load_agent(args.run, cfg, args.device, env)
            row = {"run": args.run, **evaluate_actor(actor, env, cfg, progress=not args.quiet)}
        results.append({**row, "overrides": args.overrides, "config_file": args.config})
        if args.json:  # as it goes: an interrupted `--planner all` keeps the planners it measured
            write_json(args.json, results if len(names) > 1 else results[0])
    print_results(results, env, base)
    if args.json:
        print(f"wrote {args.json}")
    if args.plot:
        from amia.eval.pictures import planner_plot

        planner_plot(args.plot, results)
        print(f"wrote {args.plot}")
    if args.gif and not args.oracle:
        from amia.eval.pictures import write_gif
        from amia.infra.run_dir import data_file

        data = data_file(args.run, read_config(args.run))
        if not write_gif(args.gif, actor, env, cfg, data):
            print(f"note: {data} not found; the GIF shows no planned positions")
        print(f"wrote {args.gif}")


def cmd_eval_goal_frame(args) -> None:
    """``amia eval --protocol goal-frame``: starts from held-out trajectories, goals ``--offset`` steps ahead."""
    from amia.agent.load import AgentConfig
    from amia.eval.goal_frame import GoalFrameConfig, goal_frame

    agent = _config(AgentConfig, args, args.overrides, task=args.task, mode=1 if args.reflex else args.mode,
                    reflex=args.reflex or None, policy_init=args.policy_init or None, critic_weight=args.critic_weight,
                    hierarchical=args.hierarchical or None, planner=args.planner)
    cfg = GoalFrameConfig(episodes=args.episodes or 100, seed=args.seed if args.seed is not None else 0,
                          offset=args.offset, budget=args.budget)
    r = {**goal_frame(args.run, cfg, agent, args.data, args.device, args.imports, progress=not args.quiet),
         "overrides": args.overrides, "config_file": args.config}
    print(f"{r['env']} goal-frame (offset {cfg.offset}, budget {cfg.budget}, {cfg.episodes} episodes, seed {cfg.seed}): "
          f"success {r['success_rate']:.3f} [{r['criterion']}]; {r['ms_per_plan_median']} ms per plan")
    if args.json:
        write_json(args.json, r)
        print(f"wrote {args.json}")


def write_json(path: str, value) -> None:
    """Write a results file atomically (never through a symbolic link)."""
    from amia.infra.checkpoint import atomic_write_text

    atomic_write_text(path, json.dumps(value, indent=2))


def print_results(results: list[dict], env: str, cfg) -> None:
    """The evaluation table: one row per actor."""
    print(f"\n{'actor':<8} {'success':>8} {'strict':>7} {'final px':>9} {'ms/plan':>8} {'ms/act':>7}   "
          f"({env}, task {cfg.task}, {cfg.episodes} episodes, seed {cfg.seed})")
    for r in results:
        ms = "-" if r["ms_per_plan_median"] is None else f"{r['ms_per_plan_median']:.2f}"
        ma = "-" if r["ms_per_action_mean"] is None else f"{r['ms_per_action_mean']:.2f}"
        print(f"{r['planner']:<8} {r['success_rate']:>8.3f} {r['strict_success_rate']:>7.3f} "
              f"{r['mean_final_distance_px']:>9.2f} {ms:>8} {ma:>7}")
        extra = {k: r[k] for k in ("region_entry_rate", "steps_inside_region", "mean_min_point_distance_px", "hazard_rate",
                                   "capture_rate") if k in r}
        if extra:
            print("         " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items()))


def cmd_distill(args) -> None:
    """Compile Mode-2 into the Mode-1 policy and train the critic from memory (saved in the run directory)."""
    from amia.training.distill import DistillConfig, distill

    cfg = _config(DistillConfig, args, args.overrides, rounds=args.rounds, episodes=args.episodes)
    summary = distill(args.run, cfg, progress=not args.quiet, force=args.force)
    last = summary["rounds"][-1]
    print(f"policy: {last['labels']} Mode-2 labels, final loss {last['policy_loss']:.4f}; critic: "
          f"{summary['critic_examples']} examples from memory ({summary['memory_entries']} entries), "
          f"loss {summary['critic_loss']:.4f}; {summary['seconds']:.0f} s")
    if "amortise_energy_last" in summary:
        print(f"amortised policy: Mode-2's energy of its roll-outs {summary['amortise_energy_first']:.3f} -> "
              f"{summary['amortise_energy_last']:.3f} on {summary['amortise_states']} states from memory")
    print(f"wrote {args.run}/policy.safetensors, critic.safetensors, probe.safetensors, distill.json")


def cmd_reflex(args) -> None:
    """Compile the run's Mode-1 policy into its reflex (``amia.training.reflex``; saved in the run directory)."""
    from amia.training.reflex import ReflexTrainConfig, train_reflex

    cfg = _config(ReflexTrainConfig, args, args.overrides, rounds=args.rounds, episodes=args.episodes)
    summary = train_reflex(args.run, cfg, progress=not args.quiet, force=args.force)
    for r in summary["rounds"]:
        print(f"round {r['round'] + 1}: {r['acting']} acting, success {r['success']:.3f} on training episodes; "
              f"{r['labels']} labels, fit loss {r['loss']:.5f}")
    print(f"wrote {args.run}/reflex.safetensors, reflex.json ({summary['seconds']:.0f} s); "
          f"`amia eval --run {args.run} --reflex` acts with it")


def cmd_probe(args) -> None:
    """Fit the run's position read-out (what the region, keep-away and evade cost terms read positions with)."""
    from amia.training.distill import save_probe

    probe = save_probe(args.run)
    print(f"wrote {args.run}/probe.safetensors: {probe.weight.shape[1]} positions from {probe.weight.shape[0] - 1}-D states")


def cmd_refine(args) -> None:
    """Refine the world model on the agent's own Mode-2 experience (a new run directory)."""
    from amia.training.refine import RefineConfig, refine

    cfg = _config(RefineConfig, args, args.overrides, rounds=args.rounds, episodes=args.episodes)
    summary = refine(args.run, args.out, cfg, args.device, progress=not args.quiet, force=args.force)
    for r in summary["rounds"]:
        print(f"round seed {r['seed']}: Mode-2 success {r['success_rate']:.3f} on {r['episodes']} training episodes; "
              f"held-out prediction error on own experience {r['own_error_before']:.4f} -> {r['own_error_after']:.4f}, "
              f"on the dataset {r['data_error_before']:.4f} -> {r['data_error_after']:.4f}")
    print(f"wrote {args.out} (evaluate it with `amia eval --run {args.out}`)")


def cmd_info(args) -> None:
    """Check a trajectory file (layout, sizes, finite values, its world, every frame's checksum) and summarise it."""
    from amia.data import check_world, read_info, verify_frames

    info = read_info(args.file)
    check_world(info, info.env_id)
    verify_frames(args.file)
    lengths = info.episode_offsets[1:] - info.episode_offsets[:-1]
    print(f"{info.path}: env {info.env_id}, {info.episodes} episodes, {info.frames} frames "
          f"(episode length {lengths.min()}..{lengths.max()}), obs {info.obs_shape} uint8, "
          f"action dim {info.action_dim}, state {', '.join(info.state_names)}")


def cmd_convert(args) -> None:
    """Between amia trajectory files and Minari datasets: one side is ``minari:DATASET_ID``, the other a file."""
    from amia.data.minari_io import from_minari, to_minari

    source, target = (x.startswith(MINARI_PREFIX) for x in (args.source, args.to))
    if source == target:
        raise ValueError(f"convert needs one side minari:DATASET_ID and the other a trajectory file, got --from "
                         f"{args.source} --to {args.to}")
    if source:
        path = from_minari(args.source[len(MINARI_PREFIX):], args.to, args.image_size, force=args.force)
    else:
        if args.image_size is not None:
            raise ValueError("--image-size applies to --from minari:DATASET_ID; a trajectory file keeps its frames")
        path = to_minari(args.source, args.to[len(MINARI_PREFIX):], force=args.force)
    print(f"wrote {path}")


def print_metrics(metrics: dict) -> None:
    errors = sorted(k for k in metrics if k.startswith(("pred_error_", "copy_error_")))
    keys = [k for k in ("env_id", "steps", "train_seconds", "samples_per_s", "probe", "probe_r2", "probe_r2_layout",
                        *errors, "embedding_std_min", "effective_rank", "success_rate", "strict_success_rate",
                        "mean_final_distance_px", "ms_per_plan_median")
            if k in metrics]
    width = max(map(len, keys))
    for k in keys:
        v = metrics[k]
        print(f"  {k:<{width}}  {v:.4g}" if isinstance(v, float) else f"  {k:<{width}}  {v}")


def count(text: str) -> int:
    """An option's value that counts something: an integer >= 1 (argparse names the option in the error)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return value


def seed(text: str) -> int:
    """A seed option's value: an integer >= 0."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 0")
    return int(text)


def _rounds_arguments(parser, what: str, rounds: int, episodes: int, overrides: str, func) -> None:
    """The arguments shared by the commands that learn in rounds of training episodes (distill, refine)."""
    parser.add_argument("--rounds", type=count, help=f"{what} rounds (default {rounds})")
    parser.add_argument("--episodes", type=count, help=f"training episodes per round (default {episodes})")
    parser.add_argument("--config", help="YAML preset of the settings (see configs/)")
    parser.add_argument("--force", action="store_true", help="replace what an earlier job with other settings wrote")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=overrides)
    parser.set_defaults(func=func)


def _collect_parser(sub) -> None:
    c = sub.add_parser("collect", help="collect reward-free trajectories into an HDF5 file")
    c.add_argument("--env", default=DEFAULT_ENV, help="amia world or any registered Gymnasium id (default %(default)s)")
    c.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers the env id; e.g. gym_pusht); may repeat")
    c.add_argument("--episodes", type=count, default=1000)
    c.add_argument("--steps", type=count, default=100, help="actions per episode (longer episodes are cut into pieces)")
    c.add_argument("--policy", help="amia worlds: drift (default; PLDM random walk), uniform, or doors (half the episodes "
                                    "go through the door: rooms worlds); other envs: smooth (default; correlated noise), "
                                    "random (uniform, held --repeat steps) or module:name (your own)")
    c.add_argument("--repeat", type=count, default=1, help="steps each random action is held (--policy random)")
    c.add_argument("--image-size", type=count, default=64, help="frames are resized to this square size (other envs)")
    c.add_argument("--num-envs", type=count, default=8, help="copies of the env stepped at once (other envs)")
    c.add_argument("--vectorization", choices=["sync", "async"], default="sync",
                   help="Gymnasium vector mode: async runs each copy in its own process (other envs)")
    c.add_argument("--seed", type=seed, default=0)
    c.add_argument("--out", required=True, help="trajectory file to write")
    c.add_argument("--force", action="store_true", help="replace an existing file")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=cmd_collect)


def _train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a JEPA world model (collects data first when --data is not given)")
    t.add_argument("--env", help=f"world id (default: the --data file's env, else {DEFAULT_ENV})")
    t.add_argument("--data", help="trajectory file (default: collect RUN_DIR/data.h5)")
    t.add_argument("--out", required=True, help="run directory; rerunning the same command resumes it")
    t.add_argument("--config", help="YAML preset (see configs/)")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--levels", type=int, default=1, choices=[1, 2],
                   help="2: after level 1 (skipped when finished), train the H-JEPA's level 2 on its frozen states, "
                        "then level 2's critic (writes level2.safetensors, level2.json, level2_critic.safetensors, "
                        "level2_critic.json; rerun to resume)")
    t.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. steps=500 jepa.loss.cov=4; level2.KEY=value addresses "
                        "amia.training.level2.HJEPAConfig (with --levels 2), e.g. level2.stride=4 level2.pool=mean, and "
                        "critic2.KEY=value amia.training.critics.Level2CriticConfig, e.g. critic2.steps=10000")
    t.set_defaults(func=cmd_train)


def _pretrain_parser(sub) -> None:
    t = sub.add_parser("pretrain", help="train a world model on frames without actions (video); then `amia posttrain`")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", nargs="+", metavar="PATH",
                     help="video clips (.mp4 .webm .avi .mkv .mov with amia[video], .gif, .npy frame arrays) or folders "
                          "of them; each clip is one episode, read once into RUN_DIR/video.h5")
    src.add_argument("--data", help="a trajectory file whose frames are used, its actions ignored")
    t.add_argument("--out", required=True, help="run directory; rerunning the same command resumes it")
    t.add_argument("--config", help="YAML preset of amia.training.world_model.PretrainConfig")
    t.add_argument("--image-size", type=int, default=64, help="frames are resized to this square size (--video)")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. steps=500 latent_action.dim=2 latent_action.noise=0.1")
    t.set_defaults(func=cmd_pretrain)


def _posttrain_parser(sub) -> None:
    t = sub.add_parser("posttrain", help="give a pretrained (action-free) run its actions from a few labelled episodes")
    t.add_argument("--run", required=True, help="the run made by `amia pretrain`")
    t.add_argument("--data", required=True, help="trajectory file with actions (the labelled episodes)")
    t.add_argument("--out", required=True, help="the new, ordinary run directory; rerunning resumes it")
    t.add_argument("--config", help="YAML preset of amia.training.posttrain.PosttrainConfig")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. steps=1000 match=0")
    t.set_defaults(func=cmd_posttrain)


def _label_parser(sub) -> None:
    t = sub.add_parser("label", help="give a pretrained run's frames actions: an inverse model fitted on a few "
                                     "labelled episodes labels them; then `amia train --data`")
    t.add_argument("--run", help="the run made by `amia pretrain` whose states the inverse model reads (not needed "
                                 "with reads=pixels, given --frames)")
    t.add_argument("--data", required=True, help="trajectory file with actions (the labelled episodes)")
    t.add_argument("--frames", help="trajectory file of the frames to label (default: those the run was pretrained on)")
    t.add_argument("--out", required=True, help="the new trajectory file: the labelled episodes, then the frames "
                                                "with inferred actions")
    t.add_argument("--config", help="YAML preset of amia.training.inverse_labels.LabelConfig")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. context=3 steps=5000, or "
                                                                   "reads=pixels max_std=0.2")
    t.set_defaults(func=cmd_label)


def _demo_parser(sub) -> None:
    d = sub.add_parser("demo", help="the main job on the default world: collect, train, plan to goals")
    d.add_argument("--env", default=DEFAULT_ENV, help="world id (default %(default)s)")
    d.add_argument("--out", default="runs/demo", help="run directory (default %(default)s)")
    d.add_argument("--device", default="cpu")
    d.add_argument("--episodes", type=count, default=100, help="goal-reaching episodes (default %(default)s)")
    d.add_argument("--json", help="also write the results to this JSON file")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)


def _distill_parser(sub) -> None:
    s = sub.add_parser("distill", help="train the Mode-1 policy (from Mode-2's actions) and the critic (from memory)")
    s.add_argument("--run", required=True, help="a trained run directory; policy and critic are saved there")
    _rounds_arguments(s, "act-plan-distil", 4, 200,
                      "DistillConfig overrides, e.g. steps=100 policy.steps=2000 critic.gamma=0.95", cmd_distill)


def _reflex_parser(sub) -> None:
    s = sub.add_parser("reflex", help="compile the Mode-1 policy into the reflex: a small network on pooled pixels")
    s.add_argument("--run", required=True, help="a run with a distilled policy; the reflex is saved there")
    _rounds_arguments(s, "act-label-fit", 4, 200, "ReflexTrainConfig overrides, e.g. fit_steps=5000 reflex.hidden=256 "
                      "reflex.pool=2", cmd_reflex)


def _probe_parser(sub) -> None:
    s = sub.add_parser("probe", help="fit the position read-out that the region, keep-away and evade tasks use")
    s.add_argument("--run", required=True, help="a trained run directory with a true state in its data")
    s.set_defaults(func=cmd_probe)


def _refine_parser(sub) -> None:
    r = sub.add_parser("refine", help="refit the predictor on the agent's own Mode-2 experience (writes a new run)")
    r.add_argument("--run", required=True, help="a trained run directory (left unchanged)")
    r.add_argument("--out", required=True, help="the refined run's directory; rerunning resumes it")
    r.add_argument("--device", default="cpu")
    _rounds_arguments(r, "act-refit", 2, 128, "RefineConfig overrides, e.g. steps=120 fit_steps=3000 own_fraction=0.5 "
                      "act.planner=gd act.surprise.enabled=false", cmd_refine)


def _eval_parser(sub) -> None:
    e = sub.add_parser("eval", help="goal reaching and other tasks: the standard protocol, Mode-2 or Mode-1")
    e.add_argument("--run", help="a trained run directory (required unless --oracle)")
    e.add_argument("--oracle", action="store_true",
                   help="plan with the world's true dynamics instead of a model (the ceiling; needs --env or --run; "
                        "TwoRooms, Wall, Maze, Chaser)")
    e.add_argument("--config", help="YAML preset of the evaluation settings (see configs/)")
    e.add_argument("--planner", choices=["gd", "cem", "mppi", "hybrid", "all"], help="Mode-2 planner (default gd)")
    e.add_argument("--mode", type=int, choices=[1, 2], help="2: plan (default); 1: the distilled policy")
    e.add_argument("--reflex", action="store_true", help="Mode-1 through the run's reflex (made by `amia reflex`)")
    e.add_argument("--task", choices=["reach", "reach_avoid", "keep_away", "evade"],
                   help="the configurator's task (default reach)")
    e.add_argument("--risk", choices=["expected", "mean_std", "cvar", "adversarial"],
                   help="a run with a latent: how the sampled futures' costs combine (uncertainty.risk)")
    e.add_argument("--futures", type=int, help="a run with a latent: futures sampled per candidate plan "
                                               "(uncertainty.futures; default 0: the most likely future only)")
    e.add_argument("--policy-init", action="store_true", help="start every Mode-2 plan from the policy")
    e.add_argument("--hierarchical", action="store_true",
                   help="hierarchical Mode-2 over the run's two H-JEPA levels (needs `amia train --levels 2`); "
                        "settings: hierarchy.KEY=value overrides (amia.agent.hierarchical.HierarchyConfig)")
    e.add_argument("--critic-weight", type=float, help="weight v of the critic term (default 0)")
    e.add_argument("--env", help="world (default: the one the model was trained on)")
    e.add_argument("--protocol", choices=["start-goal", "goal-frame"], default="start-goal",
                   help="start-goal: amia's seeded start/goal pairs (default); goal-frame: start from a held-out "
                        "trajectory, reach its frame --offset steps later within --budget steps (any env with hooks)")
    e.add_argument("--data", help="goal-frame: trajectory file (default: the run's data, its held-out episodes)")
    e.add_argument("--offset", type=count, default=25, help="goal-frame: steps from start to goal (default 25)")
    e.add_argument("--budget", type=count, default=50, help="goal-frame: steps the agent may take (default 50)")
    e.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers the env and its hooks)")
    e.add_argument("--episodes", type=count, help="episodes (default 200; goal-frame 100)")
    e.add_argument("--seed", type=seed, help="start/goal seed (default 0: the standard set)")
    e.add_argument("--device", default="cpu")
    e.add_argument("--json", help="write the results here")
    e.add_argument("--gif", help="write an animation of a few episodes with their plans")
    e.add_argument("--plot", help="write a plot of success and time per plan (with --planner all)")
    e.add_argument("--quiet", action="store_true")
    e.add_argument("overrides", nargs="*", metavar="key=value",
                   help="amia.eval.protocol.EvalConfig overrides, e.g. replan_every=2 planning.horizon=40 planning.samples=256 "
                        "max_steps=300 hierarchy.level2.horizon=6 hierarchy.switch_distance=0.2")
    e.set_defaults(func=cmd_eval)


def _info_parser(sub) -> None:
    i = sub.add_parser("info", help="check a trajectory file and summarise it")
    i.add_argument("file")
    i.set_defaults(func=cmd_info)


def _convert_parser(sub) -> None:
    v = sub.add_parser("convert", help="convert between amia trajectory files and Minari datasets")
    v.add_argument("--from", dest="source", required=True, metavar="SOURCE",
                   help="a trajectory file, or minari:DATASET_ID (a dataset under MINARI_DATASETS_PATH)")
    v.add_argument("--to", required=True, help="minari:DATASET_ID, or a trajectory file to write")
    v.add_argument("--image-size", type=count, help="from Minari: resize the frames to this square size (default: as stored)")
    v.add_argument("--force", action="store_true", help="replace an existing file or dataset")
    v.set_defaults(func=cmd_convert)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ``amia: error: ...`` with exit code 2, like every other error."""

    def error(self, message: str):
        self.exit(2, f"amia: error: {self.prog.removeprefix('amia').strip() + ': ' if self.prog != 'amia' else ''}"
                     f"{message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="amia", description="JEPA world models and planning agents (LeCun, 2022).")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error (also after the command)")
    sub = p.add_subparsers(dest="command", required=True)
    _collect_parser(sub)
    _train_parser(sub)
    _pretrain_parser(sub)
    _posttrain_parser(sub)
    _label_parser(sub)
    _demo_parser(sub)
    _distill_parser(sub)
    _reflex_parser(sub)
    _probe_parser(sub)
    _refine_parser(sub)
    _eval_parser(sub)
    _info_parser(sub)
    _convert_parser(sub)
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``key=value`` overrides and ``--debug`` may stand anywhere on it (overrides keep
    their order: a later one wins)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [x for x in extra if not OVERRIDE.match(x) or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        given = set(extra) | set(args.overrides)
        args.overrides = [a for a in argv if a in given]
    args.debug = debug
    return args


def describe(error: BaseException) -> str:
    """One line for an expected failure: the file and what went wrong (a full disk and a refused permission named)."""
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        hint = {errno.ENOSPC: " (the disk is full: free space, then rerun to resume)",
                errno.EACCES: " (this user may not write or read there)", errno.EROFS: " (a read-only file system)"}
        return f"{where}{error.strerror}{hint.get(error.errno, '')}"
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def main(argv: list[str] | None = None) -> int:
    """Run one command; every expected failure is one line ``amia: error: ...`` and exit code 2 (``--debug``: the
    traceback too)."""
    from amia.infra.host import retain_freed_memory
    from amia.training.loop import TrainingError

    args = parse(argv)
    retain_freed_memory()
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("amia: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, TrainingError) as e:
        if args.debug:
            traceback.print_exc()
        print(f"amia: error: {describe(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
