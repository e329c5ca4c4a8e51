"""The goal-frame protocol: pairs drawn from held-out trajectories, worlds put into recorded states through
hooks, success by the env's criterion; and the action box through which any env's actions are planned."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from amia.agent.action_box import ActionBox, BoxedActor
from amia.data import GymCollectConfig, TrajectoryWriter, collect, collect_gym
from amia.data.collect import CollectConfig
from amia.envs.gym_world import GymWorld
from amia.envs.hooks import hooks_for
from amia.envs.pixels import state_of
from amia.eval.goal_frame import GoalFrameConfig, evaluate_goal_frame, goal_frame_pairs


class Replay:
    """An actor that replays the recorded actions between each start and its goal, then stands still (the
    oracle of the protocol: in a deterministic world it reaches every goal exactly)."""

    periods, warmup_steps = {"plan": 1}, 0

    def __init__(self, data, episodes, cfg: GoalFrameConfig, still: float = 0.0):
        pairs = goal_frame_pairs(data, episodes, cfg)
        with h5py.File(data) as f:
            act, off = f["action"][()], f["episode_offsets"][()]
        first = off[pairs["episode"]] + pairs["t"]
        self.plan = np.stack([act[first + k] for k in range(cfg.offset)], axis=1)  # (B, offset, A)
        self.still = still

    def reset(self, goal_obs, seed=0, record=0, **task_inputs):
        self.t = 0

    def act(self, obs):
        a = self.plan[:, self.t] if self.t < self.plan.shape[1] else np.full_like(self.plan[:, 0], self.still)
        self.t += 1
        return a

    def report(self):
        return {}

    def describe(self):
        return {"planner": "replay"}


def _file(tmp_path, lengths):
    """A trajectory file whose state counts frames: frame i of the file has state (i, 10 * episode)."""
    path = tmp_path / "count.h5"
    w = TrajectoryWriter(path, "test", (1, 2, 2), 1, ["i", "e"])
    n = 0
    for e, length in enumerate(lengths):
        idx = np.arange(n, n + length)
        obs = (idx % 256).astype(np.uint8)[:, None, None, None] * np.ones((1, 2, 2), np.uint8)
        w.add_batch(obs[None], np.zeros((1, length - 1, 1), np.float32),
                    np.stack([idx, np.full(length, 10 * e)], 1)[None].astype(np.float32))
        n += length
    w.close()
    return path


def test_pairs_come_from_one_trajectory_offset_steps_apart(tmp_path):
    path = _file(tmp_path, [5, 40, 3, 30])
    cfg = GoalFrameConfig(episodes=64, offset=25, seed=3)
    pairs = goal_frame_pairs(path, np.arange(4), cfg)
    assert set(pairs["episode"].tolist()) == {1, 3}  # the only trajectories with 26 frames or more
    assert (pairs["goal"][:, 0] - pairs["start"][:, 0] == 25).all() and (pairs["goal"][:, 1] == pairs["start"][:, 1]).all()
    assert (pairs["goal_obs"][:, 0, 0, 0] == pairs["goal"][:, 0] % 256).all()  # the frame of the goal's time
    lengths = np.array([5, 40, 3, 30])[pairs["episode"]]
    assert (pairs["t"] >= 0).all() and (pairs["t"] + 25 <= lengths - 1).all()
    again = goal_frame_pairs(path, np.arange(4), cfg)
    assert all(np.array_equal(pairs[k], again[k]) for k in pairs)
    with pytest.raises(ValueError, match="no trajectory among the 2 used has the 26 frames"):
        goal_frame_pairs(path, np.array([0, 2]), cfg)


def test_the_action_box_maps_planned_actions_into_any_box():
    box = ActionBox((0.0, 10.0), (2.0, 30.0))
    with pytest.raises(ValueError, match="low < high"):
        ActionBox((1.0,), (1.0,))

    class Fixed:
        periods, warmup_steps = {"plan": 1}, 0

        def act(self, obs):
            return np.array([[-1.0, 1.0], [0.0, 0.5]])

        def describe(self):
            return {}

    assert BoxedActor(Fixed(), box).act(None).tolist() == [[0.0, 30.0], [1.0, 25.0]]

    # a model trained on a declared box sees actions in [-1, 1]^A; amia's worlds' models see them as they are
    from amia.models.jepa import JEPA, JEPAConfig

    boxed, plain = JEPA(JEPAConfig(), (3, 16, 16), 2, ([0.0, 10.0], [2.0, 30.0])), JEPA(JEPAConfig(), (3, 16, 16), 2)
    a = torch.tensor([[0.0, 10.0], [1.0, 25.0], [2.0, 30.0]])
    assert boxed.normalise(a).tolist() == [[-1.0, -1.0], [0.0, 0.5], [1.0, 1.0]] and plain.normalise(a) is a
    assert "action_mid" not in boxed.state_dict()  # the box lives in the checkpoint's metadata


def test_tworooms_replay_reaches_every_goal_and_standing_still_does_not(tmp_path):
    data = tmp_path / "tr.h5"
    collect("amia/TwoRooms-v0", data, CollectConfig(episodes=12, steps=40, batch=12), progress=False)
    cfg = GoalFrameConfig(episodes=24, offset=25, budget=25, timing_calls=0)
    eps = np.arange(12)
    r = evaluate_goal_frame(Replay(data, eps, cfg), "amia/TwoRooms-v0", data, eps, cfg, progress=False)
    assert r["success_rate"] == 1.0 and max(r["final_distance_px"]) < 1e-3
    still = Replay(data, eps, GoalFrameConfig(episodes=24, offset=1, budget=25))  # one recorded step, then still
    r2 = evaluate_goal_frame(still, "amia/TwoRooms-v0", data, eps, cfg, progress=False)
    assert r2["success_rate"] < 0.5 and r2["success"] == [int(d < 4.5) for d in r2["final_distance_px"]]


def test_pendulum_hooks_put_the_env_into_recorded_states(tmp_path):
    data = tmp_path / "p.h5"
    collect_gym("Pendulum-v1", data, GymCollectConfig(episodes=6, steps=30, num_envs=2, image_size=16), progress=False)
    hooks = hooks_for("Pendulum-v1")
    with h5py.File(data) as f:
        states = f["state"][()]
    world = GymWorld("Pendulum-v1", 3, 16, hooks)
    frames, info = world.set_state(states[[3, 17, 40]])
    assert frames.shape == (3, 3, 16, 16) and np.allclose(info["state"], states[[3, 17, 40]], atol=1e-6)
    # the criterion wraps angles: pi - 0.1 and -pi + 0.1 are 0.2 rad apart
    a, b = np.array([[np.cos(np.pi - 0.1), np.sin(np.pi - 0.1), 0]]), np.array([[np.cos(-np.pi + 0.1), np.sin(-np.pi + 0.1), 0]])
    assert hooks.success(a, b).tolist() == [True] and hooks.success(a, -b).tolist() == [False]
    cfg = GoalFrameConfig(episodes=8, offset=10, budget=10, timing_calls=0)
    eps = np.arange(6)
    r = evaluate_goal_frame(Replay(data, eps, cfg), "Pendulum-v1", data, eps, cfg, progress=False)
    assert r["success_rate"] == 1.0 and r["criterion"].startswith("final angle")


def test_unknown_envs_name_the_missing_hooks():
    with pytest.raises(ValueError, match="no hooks for 'CarRacing-v3'.*register_hooks"):
        hooks_for("CarRacing-v3")
    state, names = state_of(np.zeros((2, 3), np.float32), __import__("gymnasium").spaces.Box(-1, 1, (3,)))
    assert state.shape == (2, 3) and names == ["obs_0", "obs_1", "obs_2"]


def test_pendulum_end_to_end_from_the_command_line(tmp_path):
    """collect, train and goal-frame eval of an env amia has no code for, with only generic code paths."""
    data, run, out = tmp_path / "p.h5", tmp_path / "run", tmp_path / "gf.json"
    amia = [sys.executable, "-m", "amia.cli"]
    env = {"OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PATH": "/usr/bin:/bin"}
    subprocess.run([*amia, "collect", "--env", "Pendulum-v1", "--episodes", "10", "--steps", "20", "--num-envs", "2",
                    "--image-size", "32", "--out", str(data), "--quiet"], check=True, env=env)
    subprocess.run([*amia, "train", "--data", str(data), "--out", str(run), "--quiet", "steps=4", "batch_size=8",
                    "window=4", "diag_windows=16", "val_fraction=0.3"], check=True, env=env, capture_output=True)
    done = subprocess.run([*amia, "eval", "--run", str(run), "--protocol", "goal-frame", "--episodes", "4", "--offset",
                           "5", "--budget", "6", "--json", str(out), "--quiet", "planning.iterations=2",
                           "planning.horizon=4", "planning.restarts=1"],
                          check=True, env=env, capture_output=True, text=True)
    r = json.loads(out.read_text())
    assert r["env"] == "Pendulum-v1" and r["protocol"] == "goal-frame" and (r["offset"], r["budget"]) == (5, 6)
    assert len(r["success"]) == 4 and r["success_rate"] == np.mean(r["success"])
    assert r["config"]["planning"]["iterations"] == 2 and r["ms_per_plan_median"] > 0
    assert "goal-frame (offset 5, budget 6, 4 episodes, seed 0): success" in done.stdout


def test_goal_frames_of_another_size_are_refused_by_shape(tmp_path):
    path = tmp_path / "small.h5"
    w = TrajectoryWriter(path, "amia/TwoRooms-v0", (2, 32, 32), 2, ["x", "y", "wall_x", "door_y"])
    w.add_batch(np.zeros((2, 31, 2, 32, 32), np.uint8), np.zeros((2, 30, 2), np.float32),
                np.tile(np.float32([20, 20, 32, 32]), (2, 31, 1)))
    w.close()
    cfg = GoalFrameConfig(episodes=2, offset=5, budget=5, timing_calls=0)
    with pytest.raises(ValueError, match=r"amia/TwoRooms-v0 gives frames \(2, 64, 64\), the goal frames are \(2, 32, 32\)"):
        evaluate_goal_frame(Replay(path, np.arange(2), cfg), "amia/TwoRooms-v0", path, np.arange(2), cfg, progress=False)
