"""Any Gymnasium environment with pixels: frames, states and actions collected through the vector API, and
training on the file without a known env id."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import h5py
import numpy as np
import pytest
from gymnasium import spaces

from amia.data import GymCollectConfig, collect_gym, read_info
from amia.data.policies import BoxRandom, BoxSmooth, load_policy
from amia.envs.pixels import frame_source, resize_frames, state_of

LOW, HIGH = np.array([-1.0, 0.0, -3.0]), np.array([1.0, 0.5, 3.0])


class Slider(gym.Env):
    """A point in 3-D that moves by its action; the picture's red row ``x`` band shows the first coordinate. It
    terminates at random (probability 0.1 per step) so that collection sees episodes of every length."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float64)
        self.action_space = spaces.Box(LOW.astype(np.float32), HIGH.astype(np.float32))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1, 1, 3)
        return self.pos.copy(), {}

    def step(self, action):
        self.pos = self.pos + np.asarray(action, np.float64)
        return self.pos.copy(), 0.0, bool(self.np_random.random() < 0.1), False, {}

    def render(self):
        img = np.zeros((20, 30, 3), np.uint8)
        img[..., 0] = np.uint8(np.clip(128 + 10 * self.pos[0], 0, 255))
        return img


class SliderPictures(Slider):
    """The same world seen only as pictures: the observation is the frame, there is no state to store."""

    def __init__(self, render_mode=None):
        super().__init__(render_mode)
        self.observation_space = spaces.Box(0, 255, (20, 30, 3), np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.render(), {}

    def step(self, action):
        _, r, term, trunc, info = super().step(action)
        return self.render(), r, term, trunc, info


gym.register("test/Slider-v0", entry_point=Slider)
gym.register("test/SliderPictures-v0", entry_point=SliderPictures)


def test_resize_averages_areas_and_keeps_grey_single_channel():
    frames = np.zeros((1, 4, 4, 4), np.uint8)
    frames[0, :2, :2, 0] = 200  # one 2x2 block bright in red; the alpha channel is dropped
    frames[..., 3] = 255
    out = resize_frames(frames, 2)
    assert out.shape == (1, 3, 2, 2) and out[0, 0].tolist() == [[200, 0], [0, 0]] and out[0, 1:].max() == 0
    grey = resize_frames(np.full((2, 6, 6, 1), 7, np.uint8), 3)
    assert grey.shape == (2, 1, 3, 3) and (grey == 7).all()
    with pytest.raises(ValueError, match=r"uint8 pictures of shape \(B, H, W, 1\|3\|4\)"):
        resize_frames(np.zeros((2, 6, 6), np.uint8), 3)


def test_frame_source_and_state_follow_the_spaces():
    image = spaces.Box(0, 255, (8, 8, 3), np.uint8)
    vector = spaces.Box(-1, 1, (2,), np.float32)
    assert frame_source(image, [], "e") == "obs"
    assert frame_source(spaces.Dict({"pixels": image, "agent_pos": vector}), [], "e") == "obs:pixels"
    assert frame_source(vector, ["rgb_array"], "e") == "render"
    with pytest.raises(ValueError, match="e: observations .* render_mode='rgb_array'"):
        frame_source(vector, ["human"], "e")
    obs = {"pixels": np.zeros((2, 8, 8, 3), np.uint8), "agent_pos": np.array([[1, 2], [3, 4]], np.float32)}
    state, names = state_of(obs, spaces.Dict({"pixels": image, "agent_pos": vector}))
    assert names == ["agent_pos_0", "agent_pos_1"] and state.tolist() == [[1, 2], [3, 4]]
    assert state_of(np.zeros((2, 8, 8, 3), np.uint8), image)[0].shape == (2, 0)


def test_box_policies_stay_in_the_box_and_hold_their_actions():
    rng = np.random.default_rng(0)
    smooth = BoxSmooth(LOW, HIGH, rho=0.95)
    smooth.reset(64, rng)
    acts = np.stack([smooth(None, rng) for _ in range(50)])
    assert (acts >= LOW).all() and (acts <= HIGH).all()
    assert np.abs(np.diff(acts, axis=0)).mean() < 0.5 * np.abs(acts - acts.mean((0, 1))).mean()  # smooth in time
    held = BoxRandom(LOW, HIGH, repeat=3)
    held.reset(4, rng)
    acts = np.stack([held(None, rng) for _ in range(6)])
    assert (acts[0] == acts[2]).all() and (acts[3] == acts[5]).all() and not (acts[2] == acts[3]).all()


def test_collect_any_env_keeps_frames_states_and_actions_aligned(tmp_path):
    out = tmp_path / "slider.h5"
    collect_gym("test/Slider-v0", out, GymCollectConfig(episodes=30, steps=12, num_envs=3, image_size=10,
                                                         policy="random"), progress=False)
    info = read_info(out)
    assert info.episodes == 30 and info.obs_shape == (3, 10, 10) and info.action_dim == 3
    assert info.action_low == pytest.approx(LOW) and info.action_high == pytest.approx(HIGH)
    assert info.state_names == ("obs_0", "obs_1", "obs_2")
    lengths = np.diff(info.episode_offsets)
    assert lengths.max() == 13 and lengths.min() < 13  # cut at 12 actions; some episodes terminated earlier
    with h5py.File(out) as f:
        obs, act, state = f["obs"][()], f["action"][()], f["state"][()]
    for a, b in zip(info.episode_offsets[:-1], info.episode_offsets[1:]):
        # within an episode each state is the last one plus the action taken: no step crosses a reset
        assert np.allclose(state[a + 1:b], state[a:b - 1] + act[a:b - 1], atol=1e-5)
        assert (act[b - 1] == 0).all()
        assert (act[a:b - 1] >= LOW.astype(np.float32)).all() and (act[a:b - 1] <= HIGH.astype(np.float32)).all()
        # the frame shows the state it was taken in
        assert np.allclose(obs[a:b, 0, 0, 0], np.clip(128 + 10 * state[a:b, 0], 0, 255), atol=1.0)


def test_a_users_policy_by_module_and_name(tmp_path, monkeypatch):
    (tmp_path / "my_policy.py").write_text("import numpy as np\n"
                                           "def push(obs, rng):\n"
                                           "    return np.tile([0.5, 0.25, -1.0], (len(obs), 1))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "d.h5"
    collect_gym("test/Slider-v0", out, GymCollectConfig(episodes=4, steps=5, num_envs=2, image_size=8,
                                                         policy="my_policy:push"), progress=False)
    with h5py.File(out) as f:
        act, off = f["action"][()], f["episode_offsets"][()]
    moving = np.ones(len(act), bool)
    moving[off[1:] - 1] = False
    assert (act[moving] == np.float32([0.5, 0.25, -1.0])).all()
    with pytest.raises(ValueError, match="my_policy:nothing.*cannot load"):
        load_policy("my_policy:nothing", None)
    with pytest.raises(ValueError, match="policy='wobbly': expected one of random, smooth or module:name"):
        GymCollectConfig(policy="wobbly")


def test_bad_envs_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"CartPole-v1: action space Discrete\(2\) is not a Box"):
        collect_gym("CartPole-v1", tmp_path / "c.h5", GymCollectConfig(episodes=1), progress=False)
    with pytest.raises(ValueError, match="--env Nowhere-v0"):
        collect_gym("Nowhere-v0", tmp_path / "c.h5", GymCollectConfig(episodes=1), progress=False)
    with pytest.raises(ValueError, match="--import no_such_module"):
        collect_gym("test/Slider-v0", tmp_path / "c.h5", GymCollectConfig(episodes=1, imports=["no_such_module"]),
                    progress=False)
    assert not (tmp_path / "c.h5").exists()


def test_pendulum_from_the_command_line_collects_and_trains_without_env_code(tmp_path):
    """A classic-control env through the CLI: pixels from render(), 1-D actions in [-2, 2], training on the file
    alone; the diagnostics probe the env's own state (cos, sin, angular velocity)."""
    data, run = tmp_path / "p.h5", tmp_path / "run"
    amia = [sys.executable, "-m", "amia.cli"]
    env = {"OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PATH": "/usr/bin:/bin"}
    subprocess.run([*amia, "collect", "--env", "Pendulum-v1", "--episodes", "8", "--steps", "20", "--num-envs", "2",
                    "--image-size", "32", "--out", str(data), "--quiet"], check=True, env=env)
    assert read_info(data).action_high == (2.0,)
    subprocess.run([*amia, "train", "--data", str(data), "--out", str(run), "--quiet", "steps=6", "batch_size=8",
                    "window=4", "diag_windows=16", "val_fraction=0.25"], check=True, env=env, capture_output=True)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["env_id"] == "Pendulum-v1" and metrics["action_high"] == [2.0] and metrics["steps"] == 6
    assert {"pred_error_repr_h16", "copy_error_repr_h16", "probe_r2", "effective_rank"} <= set(metrics)
    assert "pred_error_px_h16" not in metrics  # no pixel position in Pendulum's state


def test_pictures_only_train_with_the_state_probe_skipped(tmp_path):
    from amia.training.world_model import TrainConfig, train

    data = tmp_path / "pics.h5"
    collect_gym("test/SliderPictures-v0", data, GymCollectConfig(episodes=12, steps=10, num_envs=4, image_size=16),
                progress=False)
    info = read_info(data)
    assert info.state_names == () and info.obs_shape == (3, 16, 16)
    cfg = TrainConfig(steps=4, batch_size=4, window=4, diag_windows=8, val_fraction=0.25)
    cfg.jepa.encoder.downsample = 1
    metrics = train(None, tmp_path / "run", cfg, data=str(data), progress=False)
    assert metrics["env_id"] == "test/SliderPictures-v0" and metrics["probe"].startswith("skipped")
    assert "probe_r2" not in metrics and metrics["pred_error_repr_h10"] > 0  # episodes of 10 steps: 10-step errors
