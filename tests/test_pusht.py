"""PushT through gym-pusht: recorded states restored exactly, the published success criterion, and a scripted
pusher whose data moves the block."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from amia.data import GymCollectConfig, collect_gym, read_info
from amia.envs.gym_world import GymWorld, make_env
from amia.envs.hooks import hooks_for
from amia.envs.pusht import ANGLE_TOLERANCE, PUSHT_ID, angle_gap, set_state


def test_set_state_restores_a_recorded_state_exactly():
    env = make_env(PUSHT_ID)
    env.reset(seed=1)
    for _ in range(5):
        obs, *_ = env.step(np.array([300.0, 200.0]))
    recorded = obs["state"].copy()
    other = make_env(PUSHT_ID)
    other.reset(seed=7)
    again = set_state(other, recorded)
    assert np.allclose(again["state"], recorded, atol=1e-4)
    assert np.abs(again["pixels"].astype(int) - obs["pixels"].astype(int)).mean() < 1.0  # the same picture


def test_success_is_the_published_pose_criterion():
    success = hooks_for(PUSHT_ID).success
    goal = np.array([[0, 0, 256, 256, 0.1]])
    near = np.array([[9, 9, 256 + 19.9, 256, 0.1 - ANGLE_TOLERANCE + 0.01]])
    far = np.array([[0, 0, 256 + 20.1, 256, 0.1]])
    turned = np.array([[0, 0, 256, 256, 0.1 + ANGLE_TOLERANCE + 0.01]])
    wrapped = np.array([[0, 0, 256, 256, 0.1 + 2 * np.pi - 0.05]])  # the same pose one turn on
    assert success(np.concatenate([near, far, turned, wrapped]), np.repeat(goal, 4, 0)).tolist() == [
        True, False, False, True]
    assert angle_gap(np.array([3.1]), np.array([-3.1])) == pytest.approx(2 * np.pi - 6.2)


def test_the_pusher_moves_the_block_and_the_world_restarts_from_the_data(tmp_path):
    data = tmp_path / "pusht.h5"
    collect_gym(PUSHT_ID, data, GymCollectConfig(episodes=6, steps=60, num_envs=2, image_size=32,
                                                  policy="amia.envs.pusht:Pusher"), progress=False)
    info = read_info(data)
    assert info.obs_shape == (3, 32, 32) and info.action_low == (0.0, 0.0) and info.action_high == (512.0, 512.0)
    with h5py.File(data) as f:
        state, off = f["state"][()], f["episode_offsets"][()]
    moved = [np.linalg.norm(state[b - 1, 2:4] - state[a, 2:4]) for a, b in zip(off[:-1], off[1:])]
    assert np.median(moved) > 10  # a random walk of targets seldom touches the block; the pusher does
    world = GymWorld(PUSHT_ID, 2, 32, hooks_for(PUSHT_ID))
    frames, out = world.set_state(state[[10, 70]])
    assert np.allclose(out["state"], state[[10, 70]], atol=1e-4) and frames.shape == (2, 3, 32, 32)
