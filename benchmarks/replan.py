"""TwoRooms re-planning at the default settings (issue 20, points 1 and 2): success and decision time, one JSON.

    python benchmarks/replan.py --run runs/demo --parts screen --out benchmarks/results/replan_screen_cpu.json
    python benchmarks/replan.py --run runs/demo --parts default --seeds 0 7 --out benchmarks/results/replan_cpu.json
    python benchmarks/replan.py --run runs/demo --parts default --seeds 0 7 --reflex --out benchmarks/results/reflex_cpu.json

The run is a `make demo`-equivalent training followed by `amia distill` (so Mode-2 starts from the policy) and, for
``--reflex``, `amia reflex`.

Parts:
- ``screen``: on the tuning seed only (``--tune-seed``, never a reported one), success and median time per
  re-plan for each budget of the policy-started re-plan: ``planning.policy_restarts`` x
  ``planning.policy_iterations``.
  The defaults are chosen from this part.
- ``default``: on each reported seed (``--seeds``), what `amia eval --run RUN --seed S` does (the default
  planner) and Mode-1 (`--mode 1`; with ``--reflex`` also through the run's reflex, `--reflex`, made by
  `amia reflex --run RUN`), all timed in this process at batch size 1, with the ratio of Mode-2's decision time per
  action to each Mode-1's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARTS = ("screen", "default")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--tune-seed", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 7])
    p.add_argument("--policy-restarts", type=int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--policy-iterations", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--reflex", action="store_true", help="default part: also Mode-1 through the run's reflex")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: OMP_NUM_THREADS, else every core)")
    p.add_argument("--out", default="benchmarks/results/replan.json")
    args = p.parse_args()

    from amia.eval.protocol import EvalConfig
    from amia.infra.host import set_threads
    from benchmarks.eval_rows import eval_row, write_results

    set_threads(args.threads)
    if args.tune_seed in args.seeds:
        p.error(f"--tune-seed {args.tune_seed} is also a reported seed: settings chosen on it would not be measured")
    results: dict[str, list] = {}

    def run(name: str, seed: int, **changes) -> dict:
        return eval_row(args.run, EvalConfig(episodes=args.episodes, seed=seed), name,
                        fields=("policy_restarts", "policy_iterations"), **changes)

    def save() -> None:
        write_results(args.out, "replan", args.run, results)

    if "screen" in args.parts:
        results["screen"] = []
        for restarts in args.policy_restarts:
            for its in args.policy_iterations:
                results["screen"].append(run(f"r{restarts}_p{its}", args.tune_seed,
                                             planning={"policy_restarts": restarts, "policy_iterations": its}))
                save()
    if "default" in args.parts:
        results["default"] = []
        for seed in args.seeds:
            m2, m1 = run(f"mode2_default_seed{seed}", seed), run(f"mode1_seed{seed}", seed, mode=1)
            rows = [m2, m1] + ([run(f"reflex_seed{seed}", seed, mode=1, reflex=True)] if args.reflex else [])
            speedup = {f"speedup_per_action_{r['planner']}": m2["ms_per_action_mean"] / r["ms_per_action_mean"]
                       for r in rows[1:]}
            results["default"] += [*rows, {"seed": seed, **speedup}]
            save()
    save()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
