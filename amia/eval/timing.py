"""Decision time at batch size 1, the same way for every actor (``amia.agent.actor.Actor``)."""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from amia.agent.actor import Actor


def timing(actor: Actor, world, goal_obs: np.ndarray, calls: int, seed: int = 0) -> dict:
    """Wall time of one episode (``world`` and ``goal_obs`` hold one) after the actor's warm-up steps.

    For every kind of decision in ``actor.periods`` (``plan``: each re-plan, or each policy action in Mode-1;
    ``level2_plan``: each level-2 re-plan), ``ms_per_<kind>_median`` is the median wall time of the steps at
    which it is made (perception included; ``calls`` of the most frequent kind are timed); ``ms_per_action_mean``
    is all decision time over all actions, Mode-2's re-planning amortised over the actions it serves.
    """
    device = getattr(actor, "device", torch.device("cpu"))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    actor.reset(goal_obs, seed=seed)
    every = min(actor.periods.values())
    steps = actor.warmup_steps + max(1, calls) * every
    times: dict[str, list[float]] = {kind: [] for kind in actor.periods}
    total, obs = 0.0, world.render()
    for t in range(steps):
        sync()
        t0 = time.perf_counter()
        a = actor.act(obs)
        sync()
        dt = time.perf_counter() - t0
        if t >= actor.warmup_steps:
            total += dt
            for kind, period in actor.periods.items():
                if t % period == 0:
                    times[kind].append(dt)
        obs, _ = world.step(a)
    out = {f"ms_per_{kind}_median": round(1000 * statistics.median(v), 3) if v else None for kind, v in times.items()}
    out["ms_per_action_mean"] = round(1000 * total / (steps - actor.warmup_steps), 3)
    return out


__all__ = ["timing"]
