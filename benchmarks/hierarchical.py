"""Hierarchical against flat Mode-2 on the same episodes, with the same world model (issue #5, acceptance 1-3); one JSON.

    python benchmarks/hierarchical.py --run runs/maze                        # 200 episodes, seed 0, planner gd
    python benchmarks/hierarchical.py --run runs/maze --flat-horizons 32 64 128 --set hierarchy.switch_distance=0.2

1. Hierarchical Mode-2 (``amia eval --hierarchical``; ``amia.agent.hierarchical``) on the run's world.
2. Flat Mode-2 with the same level-1 model, on the same episodes and budget, once per ``--flat-horizons``
   (default: the flat default 32 and 64, the hierarchy's level-2 reach of 8 x 8 steps), each given at least
   the hierarchy's planning compute per step. Compute is counted in predictor calls (one predictor applied
   to one state) per level-1 step, warm re-plans only (``amia.planning.compute``): the hierarchy pays its
   level-1 roll-outs twice (the subgoal cost encodes every predicted state with ``Enc2``) plus its level-2
   roll-outs (each counted as a level-1 call, though the level-2 predictor is smaller); flat Mode-2 gets the
   fewest warm iterations (cold iterations scaled alike) that reach at least that count, its candidates per
   iteration (restarts, samples) unchanged. Both counts and wall times are in the JSON. Flat Mode-2 watches for
   surprise as the hierarchy does (``amia.agent.surprise``, the hierarchy's ``hierarchy.surprise`` settings), so
   both actors explore where their level-1 model was wrong and only the planning differs.
3. With ``--flat-critic``, flat Mode-2 once more (at the first flat horizon, same compute) with level 2's critic
   scoring the end of its horizon, ``TC(Enc2(s1[T]), Enc2(goal))``: is the hierarchy needed, or only the critic?
4. The level-2 vs level-1 open-loop position error at a 64-step horizon (``amia.training.level2.level2_horizon_report``).

The hierarchical row uses the run's level-2 critic (``amia.training.critics``) when it has one.

``--set`` takes ``amia.eval.protocol.EvalConfig`` overrides for every row (``max_steps=300``, ``planning.samples=256``,
``hierarchy.level2.horizon=6``, ...). The episode budget is the world's (400 steps in ``amia/Maze-v0``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COMPUTE_RULE = ("predictor calls (one predictor applied to one state) per level-1 step, warm re-plans only; "
                "hierarchical: 2 x level-1 roll-outs (Enc2 on every predicted state) + level-2 roll-outs (2 x with "
                "the level-2 critic) + 1 for the surprise check; flat: the check + "
                "warm iterations raised (cold scaled alike) until >= the hierarchy's count")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a run directory with both levels (`amia train --levels 2`)")
    p.add_argument("--env", help="world (default: the run's)")
    p.add_argument("--planner", default="gd", choices=["gd", "cem", "mppi", "hybrid"])
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flat-horizons", type=int, nargs="+", default=[32, 64])
    p.add_argument("--flat-critic", action="store_true",
                   help="also run flat Mode-2 with level 2's critic on the last predicted state (first flat horizon)")
    p.add_argument("--report-steps", type=int, default=64, help="horizon of the level-2 vs level-1 report")
    p.add_argument("--report-windows", type=int, default=512)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--set", nargs="+", default=[], dest="overrides", metavar="KEY=VALUE")
    p.add_argument("--out", default="benchmarks/results/hierarchical.json")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from amia.agent.load import build_actor
    from amia.envs import make_world
    from amia.eval.protocol import EvalConfig, evaluate_actor
    from amia.infra.config import apply_overrides, to_dict
    from amia.infra.provenance import git_revision, machine
    from amia.infra.run_dir import load_level2, load_level2_critic, load_model, load_parts
    from amia.models.critic import LevelOneView
    from amia.planning.compute import flat_calls_per_step, match_compute
    from amia.training.level2 import level2_horizon_report

    model, saved = load_model(args.run, args.device)
    level2, _ = load_level2(args.run, args.device, level1=model)
    critic2 = load_level2_critic(args.run, args.device, level2=level2)
    env = args.env or saved["env_id"]
    bound = make_world(env, 1).spec.max_step
    base = apply_overrides(EvalConfig(episodes=args.episodes, seed=args.seed, planner=args.planner), args.overrides)
    base = dataclasses.replace(base, surprise=base.hierarchy.surprise)  # flat rows explore alike
    watch = base.surprise.enabled

    results: list[dict] = []
    flat_configs: dict = {}
    out = {"benchmark": "hierarchical_mode2", "command": " ".join(["benchmarks/hierarchical.py", *sys.argv[1:]]),
           "run": args.run, "env": env, "git_rev": git_revision(), "machine": machine(),
           "eval_config": to_dict(base), "flat_planning": flat_configs, "compute_rule": COMPUTE_RULE,
           "results": results, "horizon_report": None}

    def save() -> None:  # after every row: a long run interrupted keeps what it measured
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))

    def run(name: str, cfg: EvalConfig, parts: dict | None = None) -> dict:
        t0 = time.time()
        actor = build_actor(model, cfg, bound, args.device, parts or load_parts(args.run, model.cfg.encoder.dim),
                            level2, critic2)
        r = {"actor": name, **evaluate_actor(actor, env, cfg)}
        r["eval_seconds"] = round(time.time() - t0, 1)
        print(json.dumps(r), flush=True)
        results.append(r)
        save()
        return r

    run("hierarchical", dataclasses.replace(base, hierarchical=True))
    target = results[0]["predictor_calls_per_step"]
    for horizon in args.flat_horizons:
        planning = match_compute(args.planner, dataclasses.replace(base.planning, horizon=horizon), base.replan_every,
                                 target, watch)
        assert flat_calls_per_step(args.planner, planning, base.replan_every, watch) >= target
        flat_configs[f"flat_h{horizon}"] = to_dict(planning)
        run(f"flat_h{horizon}", dataclasses.replace(base, hierarchical=False, planning=planning))
    if args.flat_critic:
        if critic2 is None:
            raise SystemExit(f"--flat-critic: {args.run} has no level-2 critic (`amia train --levels 2` trains it)")
        planning = match_compute(args.planner, dataclasses.replace(base.planning, horizon=args.flat_horizons[0]),
                                 base.replan_every, target, watch)
        weight = base.hierarchy.critic_weight
        run(f"flat_h{args.flat_horizons[0]}_critic2",
            dataclasses.replace(base, hierarchical=False, planning=planning, critic_weight=weight),
            parts={"critic": LevelOneView(critic2, level2)})
    report = out["horizon_report"] = level2_horizon_report(args.run, args.report_steps, args.report_windows,
                                                           args.device, seed=args.seed)
    save()
    print(f"\n{'actor':<19} {'success':>8} {'strict':>7} {'final px':>9} {'calls/step':>11} {'ms/plan':>8} {'ms/act':>7}"
          f"   ({env}, {base.episodes} episodes, seed {base.seed}, {results[0]['max_steps']} steps, {args.planner})")
    for r in results:
        print(f"{r['actor']:<19} {r['success_rate']:>8.3f} {r['strict_success_rate']:>7.3f} "
              f"{r['mean_final_distance_px']:>9.2f} {r['predictor_calls_per_step']:>11.0f} "
              f"{r['ms_per_plan_median']:>8.1f} {r['ms_per_action_mean']:>7.1f}")
    print(f"\nposition error {report['horizon_steps']} steps ahead, open loop ({report['windows']} held-out windows): "
          f"level 2 {report['level2_pred_error_px']:.2f} px, level 1 {report['level1_pred_error_px']:.2f} px, "
          f"do-nothing {report['copy_error_px']:.2f} px (probe floors: level 2 {report['level2_probe_error_px']:.2f}, "
          f"level 1 {report['level1_probe_error_px']:.2f})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
