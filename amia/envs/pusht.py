"""PushT (the community ``gym-pusht`` package, ``pip install amia[pusht]``) as amia sees it: ``amia/PushT-v0``.

The agent (a disc driven to the target position that each action names, on a 512-unit board) pushes a T-shaped
block. amia's view of it is a ``Dict`` observation: ``pixels``, the 96x96 top view without the action marker of
``render()``, and ``state``, the true ``(agent_x, agent_y, block_x, block_y, block_angle)``, stored beside the
frames and used only to start episodes and to judge success. Success (the published PushT criterion): the block
within 20 units of the goal's position and ``pi / 9`` of its angle.

``Pusher`` is the scripted collection policy: it chooses a place for the block (the env's goal pose or a random
one), walks round to the far side of the block and pushes it there, turning it by pushing near one end of the
T's bar, with noise on every target.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

PUSHT_ID = "amia/PushT-v0"
POSITION_TOLERANCE, ANGLE_TOLERANCE = 20.0, np.pi / 9


def _gym_pusht():
    try:
        import gym_pusht.envs
    except ImportError as e:
        raise ValueError(f"{PUSHT_ID} needs the gym-pusht package: pip install 'amia[pusht]' ({e})") from None
    return gym_pusht.envs


class PushTPixels(gym.Wrapper):
    """``gym_pusht``'s PushT observed as ``{"pixels": (96, 96, 3) uint8, "state": (5,) float32}``."""

    def __init__(self, render_mode: str | None = None, **kwargs):
        super().__init__(_gym_pusht().PushTEnv(obs_type="state", render_mode="rgb_array", **kwargs))
        size = self.env.unwrapped.observation_height, self.env.unwrapped.observation_width
        self.observation_space = gym.spaces.Dict({
            "pixels": gym.spaces.Box(0, 255, (*size, 3), np.uint8),
            "state": gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)})

    def _observe(self, state) -> dict:
        return {"pixels": self.env.unwrapped._render(visualize=False), "state": np.asarray(state, np.float32)}

    def reset(self, *, seed=None, options=None):
        state, info = self.env.reset(seed=seed, options=options)
        return self._observe(state), info

    def step(self, action):
        state, reward, terminated, truncated, info = self.env.step(np.asarray(action, np.float64))
        return self._observe(state), reward, terminated, truncated, info


def set_state(env: gym.Env, state: np.ndarray) -> dict:
    """Put PushT into a recorded ``(agent_x, agent_y, block_x, block_y, block_angle)`` exactly: the angle is set
    before the position (the other order moves the block), and no physics step runs."""
    push = env.unwrapped
    agent_x, agent_y, block_x, block_y, angle = (float(v) for v in state)
    push.agent.position = (agent_x, agent_y)
    push.agent.velocity = (0.0, 0.0)
    push.block.angle = angle
    push.block.position = (block_x, block_y)
    push.block.velocity, push.block.angular_velocity = (0.0, 0.0), 0.0
    for body in (push.agent, push.block):
        push.space.reindex_shapes_for_body(body)
    obs = push.get_obs()
    return {"pixels": push._render(visualize=False), "state": np.asarray(obs, np.float32)}


def angle_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The absolute difference of two angles, wrapped to ``[0, pi]``."""
    return np.abs((a - b + np.pi) % (2 * np.pi) - np.pi)


def success(reached: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """The block within ``POSITION_TOLERANCE`` units of the goal's position and ``ANGLE_TOLERANCE`` of its angle."""
    close = np.linalg.norm(reached[:, 2:4] - goal[:, 2:4], axis=1) < POSITION_TOLERANCE
    return close & (angle_gap(reached[:, 4], goal[:, 4]) < ANGLE_TOLERANCE)


class Pusher:
    """Scripted pushes with noise (``noise`` units on every target), for many copies at once.

    Each copy has a place for the block (the env's goal pose with probability ``to_goal``, else random), pushes
    the block's centre toward it from the far side (``approach`` units behind the block), and, once there or
    after ``patience`` steps, picks another place.
    """

    def __init__(self, action_space=None, noise: float = 8.0, to_goal: float = 0.5, approach: float = 100.0,
                 patience: int = 40):
        self.noise, self.to_goal, self.approach, self.patience = noise, to_goal, approach, patience

    def reset(self, num_envs: int, rng: np.random.Generator) -> None:
        self.target = np.zeros((num_envs, 2))
        self.age = np.full(num_envs, self.patience)

    def __call__(self, obs: dict, rng: np.random.Generator) -> np.ndarray:
        state = np.asarray(obs["state"], np.float64)
        agent, block = state[:, :2], centre_of_block(state)
        new = (self.age >= self.patience) | (np.linalg.norm(block - self.target, axis=1) < 10)
        goal = rng.random(len(state)) < self.to_goal
        self.target[new] = np.where(goal[new, None], [256.0, 256.0], rng.uniform(120, 392, (int(new.sum()), 2)))
        self.age = np.where(new, 0, self.age + 1)
        way = self.target - block
        way /= np.linalg.norm(way, axis=1, keepdims=True).clip(1e-6)
        behind = block - self.approach * way
        lined_up = np.linalg.norm(agent - behind, axis=1) < 25
        action = np.where(lined_up[:, None], block + 40 * way, _around(agent, block, behind))
        return np.clip(action + rng.normal(0, self.noise, action.shape), 0, 512)


def centre_of_block(state: np.ndarray) -> np.ndarray:
    """The T's centre of gravity on the board: 45 units along its stem from the body's origin, turned by its angle."""
    angle = state[:, 4]
    return state[:, 2:4] + 45.0 * np.stack([-np.sin(angle), np.cos(angle)], 1)


def _around(agent: np.ndarray, block: np.ndarray, behind: np.ndarray, clearance: float = 85.0) -> np.ndarray:
    """A target on the way to ``behind``: straight there when the straight way keeps ``clearance`` from the
    block's centre, else a point beside the block on the agent's side (swinging round it)."""
    to = behind - agent
    length = np.linalg.norm(to, axis=1, keepdims=True).clip(1e-6)
    along = np.clip(np.sum((block - agent) * to, 1, keepdims=True) / length**2, 0, 1)
    gap = np.linalg.norm(agent + along * to - block, axis=1)
    out = agent - block
    out /= np.linalg.norm(out, axis=1, keepdims=True).clip(1e-6)
    toward = behind - block
    toward /= np.linalg.norm(toward, axis=1, keepdims=True).clip(1e-6)
    swing = out + toward  # halfway round, on the agent's side
    swing /= np.linalg.norm(swing, axis=1, keepdims=True).clip(1e-6)
    return np.where((gap < clearance)[:, None], block + 1.3 * clearance * swing, behind)


__all__ = ["ANGLE_TOLERANCE", "POSITION_TOLERANCE", "PUSHT_ID", "PushTPixels", "Pusher", "angle_gap", "set_state",
           "success"]
