"""The perception-action loop (Sec. 3, Fig. 2) for any actor over a batched world: one loop for every mode."""

from __future__ import annotations

import numpy as np

from amia.agent.actor import Actor


def run_episodes(actor: Actor, world, goal_obs: np.ndarray, steps: int, seed: int = 0, record: int = 0,
                 progress=None, **task_inputs) -> dict:
    """Act for ``steps`` steps in the ``B`` episodes of a batched ``world`` (already at its start states).

    Returns the true positions ``(B, steps + 1, 2)``, the ``final_state (B, S)``, the frames of the first
    ``record`` episodes after each step (``frames``, ``(steps, record, C, H, W)``), and the actor's ``report()``. In a
    world with failures (``world.failure_name``: fallen, caught) also ``failed`` ``(B,)``: failed at any step.
    ``task_inputs`` go to ``actor.reset`` (e.g. the moving point of the keep-away task); ``progress(n)`` is
    called after each step.
    """
    actor.reset(goal_obs, seed=seed, record=record, **task_inputs)
    obs, positions, frames = world.render(), [world.state[:, :2].copy()], []
    failures = getattr(world, "failure_name", None) is not None
    failed = np.array(world.failed) if failures else None
    for _ in range(steps):
        obs, info = world.step(actor.act(obs))
        positions.append(info["state"][:, :2].copy())
        if failures:
            failed |= world.failed
        if record:
            frames.append(obs[:record])
        if progress is not None:
            progress(1)
    out = {"positions": np.stack(positions, axis=1), "final_state": np.array(world.state), "frames": frames,
           **actor.report()}
    if failures:
        out["failed"] = failed
    return out


__all__ = ["run_episodes"]
