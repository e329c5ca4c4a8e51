"""Mode-2 planners compared on the standard goal-reaching protocol: success and time per plan, one JSON.

    python benchmarks/planners.py --run runs/tworooms                      # all four planners, 200 episodes
    python benchmarks/planners.py --run runs/wall --env amia/Wall-v0 --planners mppi gd
    python benchmarks/planners.py --run runs/tworooms --set planning.horizon=40   # EvalConfig overrides

Success and distances come from the batched protocol (all episodes at once); ``ms_per_plan_median`` is the
median wall time of one warm-started re-plan for one episode (batch size 1) on this machine.
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--env")
    p.add_argument("--planners", nargs="+", default=["gd", "cem", "mppi", "hybrid"])
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--set", nargs="+", default=[], dest="overrides", metavar="KEY=VALUE")
    p.add_argument("--out", default="benchmarks/results/planners.json")
    p.add_argument("--plot", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from amia.eval.protocol import EvalConfig, evaluate
    from amia.infra.config import apply_overrides, to_dict
    from amia.infra.provenance import git_revision, machine

    base = apply_overrides(EvalConfig(episodes=args.episodes, seed=args.seed), args.overrides)
    results = []
    for name in args.planners:
        t0 = time.time()
        r = evaluate(args.run, dataclasses.replace(base, planner=name), args.device, env_id=args.env)
        r["eval_seconds"] = round(time.time() - t0, 1)
        results.append(r)
        print(json.dumps(r), flush=True)
    out = {"benchmark": "mode2_planners", "command": " ".join(["benchmarks/planners.py", *sys.argv[1:]]),
           "run": args.run, "git_rev": git_revision(), "machine": machine(), "eval_config": to_dict(base),
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"\n{'planner':<8} {'success':>8} {'strict':>7} {'final px':>9} {'ms/plan':>8}")
    for r in results:
        print(f"{r['planner']:<8} {r['success_rate']:>8.3f} {r['strict_success_rate']:>7.3f} "
              f"{r['mean_final_distance_px']:>9.2f} {r['ms_per_plan_median']:>8.1f}")
    if args.plot:
        from amia.eval.pictures import planner_plot

        planner_plot(args.plot, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
