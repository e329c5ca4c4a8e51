"""The whole agent on the standard protocol (issue 4): Mode-1 against Mode-2, policy-initialised Mode-2, the critic
with a short horizon, and the forbidden-region task; one JSON.

    python benchmarks/agent.py --run runs/tworooms                    # every part (needs `amia distill` first)
    python benchmarks/agent.py --run runs/tworooms --parts mode1 avoid

Parts:
- ``mode1``: the distilled policy alone and the default Mode-2 planner: success and wall time per action
  (perception included, batch size 1, both timed in this process).
- ``init``: success against the iteration budget (cold / warm iterations: full, half, a quarter) for Mode-2
  started from the previous plan and for Mode-2 started from the policy rolled through the predictor (the
  previous plan stays a second proposal).
- ``critic``: Mode-2 with a quarter of the default horizon, with and without the critic scoring its end.
- ``avoid``: the reach-avoid task with the forbidden-region term, and the same episodes without it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARTS = ("mode1", "init", "critic", "avoid")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--critic-weight", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="benchmarks/results/agent.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from amia.eval.protocol import EvalConfig
    from benchmarks.eval_rows import eval_row, write_results

    base = EvalConfig(episodes=args.episodes)
    full_cold, full_warm = base.planning.iterations, base.planning.warm_iterations
    results: dict[str, list] = {}

    def run(name: str, **changes) -> dict:
        return eval_row(args.run, base, name, args.device, fields=("iterations", "warm_iterations"), **changes)

    def save() -> None:
        write_results(args.out, "agent", args.run, results)

    if "mode1" in args.parts:
        m2, m1 = run("mode2_default"), run("mode1_policy", mode=1)
        results["mode1"] = [m2, m1, {"speedup_per_action": m2["ms_per_action_mean"] / m1["ms_per_action_mean"]}]
        save()
    if "init" in args.parts:
        budgets = [(full_cold, full_warm), (max(1, full_cold // 2), max(1, full_warm // 2)),
                   (max(1, full_cold // 4), max(1, full_warm // 4))]
        results["init"] = [run(f"{'policy' if init else 'cold'}_{c}_{w}", policy_init=init,
                               planning={"iterations": c, "warm_iterations": w})
                           for init in (False, True) for c, w in budgets]
        save()
    if "critic" in args.parts:
        short = max(1, base.planning.horizon // 4)
        knots = {"horizon": short, "knot_every": max(1, base.planning.knot_every // 2)}
        results["critic"] = [run(f"h{short}_no_critic", planning=knots),
                             run(f"h{short}_critic", planning=knots, critic_weight=args.critic_weight)]
        save()
    if "avoid" in args.parts:
        results["avoid"] = [run("avoid_constrained", task="reach_avoid"),
                            run("avoid_unconstrained", task="reach_avoid", forbid_weight=0.0)]
    save()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
