"""Mode-2 decision time of the default planner at batch 1 and at batch 200, for the default model and a 4x one.

    python benchmarks/plan_time.py --device cuda --out benchmarks/results/plan_time_h200.json
    python benchmarks/plan_time.py --device cpu --batch 1 --out benchmarks/results/plan_time_cpu.json

Weights are random (time does not depend on them): the TwoRooms model (2 x 64 x 64 frames, 2-D actions), the
reach task's cost, the default ``gd`` planner with the evaluation's settings (horizon 32, a cold plan of
``iterations``, then a warm re-plan of ``warm_iterations`` every ``replan_every`` steps). Per batch size:
``ms_per_plan_median`` (a warm re-plan, what most steps wait for), ``ms_per_cold_plan_median``,
``ms_per_encode_median`` (perceiving the batch's frames) and ``episode_seconds``: one 200-step episode of every
episode in the batch at once (a cold plan, the warm re-plans and a perception per step), which at batch 200 is
``amia eval``'s planning time for the standard 200 episodes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median wall milliseconds of ``fn()`` over ``repeats`` calls after one warm-up."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


@torch.no_grad()
def measure(device: str, size: str, batch: int, repeats: int, steps: int = 200) -> dict:
    from throughput import model_config

    from amia.cost.configurator import build_cost, configure
    from amia.eval.protocol import EvalConfig
    from amia.models.jepa import JEPA
    from amia.planning.planners import plan, shift

    torch.manual_seed(0)
    dev = torch.device(device)
    model = JEPA(model_config(size), (2, 64, 64), 2).to(dev).eval().requires_grad_(False)  # frozen, as when acting
    ev = EvalConfig()
    cfg, bound, every = ev.planning, 2.45, ev.replan_every
    frames = torch.randint(0, 256, (batch, 2, 64, 64), dtype=torch.uint8, device=dev)
    s, goal = model.encoder.encode(frames), model.encoder.encode(frames.flip(-1))
    cost = build_cost(configure("reach"), goal)
    g = torch.Generator(device=dev).manual_seed(0)
    previous = plan("gd", model.predictor.rollout, cost, s, torch.zeros(batch, cfg.horizon, 2, device=dev), bound, cfg,
                    generator=g).actions
    warm = timed(lambda: plan("gd", model.predictor.rollout, cost, s, shift(previous, every), bound, cfg, warm=True,
                              generator=g), dev, repeats)
    cold = timed(lambda: plan("gd", model.predictor.rollout, cost, s, torch.zeros_like(previous), bound, cfg,
                              generator=g), dev, max(1, repeats // 3))
    encode = timed(lambda: model.encoder.encode(frames), dev, repeats)
    plans = -(-steps // every)
    episode = (cold + (plans - 1) * warm + steps * encode) / 1000
    return {"device": device, "size": size, "batch": batch, "planner": "gd", "horizon": cfg.horizon,
            "iterations": cfg.iterations, "warm_iterations": cfg.warm_iterations, "restarts": cfg.restarts,
            "replan_every": every, "ms_per_plan_median": round(warm, 3), "ms_per_cold_plan_median": round(cold, 3),
            "ms_per_encode_median": round(encode, 3), "episode_steps": steps, "episode_seconds": round(episode, 3),
            "ms_per_action_mean": round(1000 * episode / steps, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", nargs="+", default=["default", "4x"])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 200])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    from throughput import write_results

    from amia.training.world_model import set_threads

    set_threads(args.threads)
    rows = []
    for size in args.size:
        for b in args.batch:
            rows.append(measure(args.device, size, b, args.repeats))
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        write_results(args.out, "plan_time", rows)


if __name__ == "__main__":
    main()
