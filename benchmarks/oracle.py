"""The ceiling: Mode-2 planners on the true dynamics (``amia eval --oracle``) on the standard protocol.

    python benchmarks/oracle.py --out benchmarks/results/oracle_cpu.json
    python benchmarks/oracle.py --envs amia/Maze-v0 --planners gd --set hierarchical=true \
        --out benchmarks/results/oracle_hierarchical_cpu.json

One row per world and planner (TwoRooms, Wall-v0 and Maze-v0 by default; gd and MPPI), each with the protocol's
default settings and episodes (``--episodes``, ``--seeds``): what a perfect world model would give the same planner,
budget and cost. Beside a model's row, the gap to the oracle's is the model's share of the failures, and the
oracle's own failures are the planner's and the cost's. With ``--set hierarchical=true`` the rows are hierarchical
Mode-2 (``amia.agent.hierarchical_oracle``) at the default hierarchy settings (those of ``configs/maze_eval.yaml``).
The JSON is rewritten after every row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--envs", nargs="+", default=["amia/TwoRooms-v0", "amia/Wall-v0", "amia/Maze-v0"])
    p.add_argument("--planners", nargs="+", default=["gd", "mppi"])
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="key=value", help="EvalConfig overrides for every row")
    args = p.parse_args()
    from amia.eval.protocol import EvalConfig, evaluate_oracle
    from amia.infra.config import apply_overrides
    from amia.infra.host import set_threads
    from amia.infra.provenance import git_revision, machine

    set_threads(args.threads)
    result = {"benchmark": "oracle", "command": " ".join(sys.argv), "git_rev": git_revision(), "machine": machine(),
              "rows": []}
    for env in args.envs:
        for planner in args.planners:
            for seed in args.seeds:
                cfg = apply_overrides(EvalConfig(), [f"planner={planner}", f"episodes={args.episodes}", f"seed={seed}",
                                                     "timing_calls=0", *args.set])
                t0 = time.time()
                r = evaluate_oracle(env, cfg, progress=False)
                row = {"env": env, "planner": planner, "hierarchical": cfg.hierarchical, "seed": seed, "episodes": args.episodes,
                       "success_rate": r["success_rate"], "strict_success_rate": r["strict_success_rate"],
                       "mean_final_distance_px": round(r["mean_final_distance_px"], 3), "seconds": round(time.time() - t0, 1)}
                result["rows"].append(row)
                print(json.dumps(row), flush=True)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
