"""Per-family hooks for the goal-frame protocol: put an environment into a recorded state, and judge success.

The protocol starts each episode from a state of a held-out trajectory and asks the agent to reach the frame that
the same trajectory showed ``offset`` steps later. It needs, for each family of environments, ``set_state(env,
state) -> obs`` (the recorded ``state`` is what collection stored: ``amia.envs.pixels.state_of`` of the
observation) and ``success(reached, goal) -> bool per episode`` on such states, with the criterion in words.
``register_hooks`` adds a family; amia's worlds, ``Pendulum-v1`` and ``amia/PushT-v0`` come with theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from amia.envs import ENV_SPECS, SUCCESS_RADIUS, pusht


@dataclass(frozen=True)
class EnvHooks:
    """``set_state(env, state) -> obs`` puts a made env into a recorded state and returns its observation there;
    ``success(reached (B, S), goal (B, S)) -> (B,) bool``; ``criterion`` says what success means."""

    set_state: Callable[[gym.Env, np.ndarray], object]
    success: Callable[[np.ndarray, np.ndarray], np.ndarray]
    criterion: str


def _reset_to_state(env: gym.Env, state: np.ndarray):
    obs, _ = env.reset(options={"state": np.asarray(state, np.float64)})
    return obs


def _within_radius(reached: np.ndarray, goal: np.ndarray) -> np.ndarray:
    return np.linalg.norm(reached[:, :2] - goal[:, :2], axis=1) < SUCCESS_RADIUS


def _pendulum_set_state(env: gym.Env, state: np.ndarray):
    cos, sin, speed = np.asarray(state, np.float64)
    env.unwrapped.state = np.array([np.arctan2(sin, cos), speed])
    return env.unwrapped._get_obs()


def _pendulum_success(reached: np.ndarray, goal: np.ndarray, tolerance: float = 0.3) -> np.ndarray:
    gap = np.arctan2(reached[:, 1], reached[:, 0]) - np.arctan2(goal[:, 1], goal[:, 0])
    return np.abs((gap + np.pi) % (2 * np.pi) - np.pi) < tolerance


HOOKS: dict[str, EnvHooks] = {
    **{env_id: EnvHooks(_reset_to_state, _within_radius, f"final position within {SUCCESS_RADIUS} px of the goal's")
       for env_id in ENV_SPECS},
    "Pendulum-v1": EnvHooks(_pendulum_set_state, _pendulum_success, "final angle within 0.3 rad of the goal's"),
    pusht.PUSHT_ID: EnvHooks(pusht.set_state, pusht.success,
                             f"block within {pusht.POSITION_TOLERANCE:g} units and {pusht.ANGLE_TOLERANCE:.4f} rad "
                             "(pi/9) of the goal's pose"),
}


def register_hooks(env_id: str, hooks: EnvHooks) -> None:
    """Make the goal-frame protocol available for ``env_id`` (replaces hooks already registered for it)."""
    HOOKS[env_id] = hooks


def hooks_for(env_id: str) -> EnvHooks:
    """The hooks of ``env_id``; a clear error naming what to register when there are none."""
    if env_id not in HOOKS:
        raise ValueError(f"the goal-frame protocol has no hooks for {env_id!r} (known: {', '.join(sorted(HOOKS))}); "
                         "register a set_state and a success function with amia.envs.hooks.register_hooks")
    return HOOKS[env_id]


__all__ = ["HOOKS", "EnvHooks", "hooks_for", "register_hooks"]
