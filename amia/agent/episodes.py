"""The perception-action loop (Sec. 3, Fig. 2) for any actor over a batched world: one loop for every mode."""

from __future__ import annotations

import numpy as np

from amia.agent.actor import Actor


def run_episodes(actor: Actor, world, goal_obs: np.ndarray, steps: int, seed: int = 0, record: int = 0,
                 progress=None, **task_inputs) -> dict:
    """Act for ``steps`` steps in the ``B`` episodes of a batched ``world`` (already at its start states).

    Returns the true positions ``(B, steps + 1, 2)``, the ``final_state (B, S)``, the frames of the first
    ``record`` episodes after each step (``frames``, ``(steps, record, C, H, W)``), and the actor's ``report()``.
    ``task_inputs`` go to ``actor.reset`` (e.g. the moving point of the keep-away task); ``progress(n)`` is
    called after each step.
    """
    actor.reset(goal_obs, seed=seed, record=record, **task_inputs)
    obs, positions, frames = world.render(), [world.state[:, :2].copy()], []
    for _ in range(steps):
        obs, info = world.step(actor.act(obs))
        positions.append(info["state"][:, :2].copy())
        if record:
            frames.append(obs[:record])
        if progress is not None:
            progress(1)
    return {"positions": np.stack(positions, axis=1), "final_state": np.array(world.state), "frames": frames,
            **actor.report()}


__all__ = ["run_episodes"]
