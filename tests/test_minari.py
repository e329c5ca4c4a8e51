"""Minari datasets: amia files there and back bit for bit (arrays, attributes and the weights trained on them), and
datasets written by Minari's own DataCollector converted and trained on."""

from __future__ import annotations

import json

import gymnasium as gym
import h5py
import numpy as np
import pytest
from gymnasium import spaces

from amia.cli import main
from amia.data import CollectConfig, GymCollectConfig, collect, collect_gym, read_info
from amia.infra.checkpoint import read_checkpoint
from amia.models.jepa import EncoderConfig, JEPAConfig, PredictorConfig
from amia.training.world_model import TrainConfig, train

minari = pytest.importorskip("minari")
from amia.data.minari_io import from_minari, load_minari, to_minari  # noqa: E402

LOW, HIGH = np.array([-1.0, -0.5], np.float32), np.array([1.0, 0.5], np.float32)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Minari asks for authors and links


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    """Every test writes its Minari datasets under its own directory, never under ~/.minari."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


class Dots(gym.Env):
    """A point in the square [-1, 1]^2 moved by its action, seen as a 16x16 picture (the red channel shows x, the
    green one y) beside its position; ends at random (probability 0.05 per step) or after 10 steps."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None):
        self.observation_space = spaces.Dict({"pixels": spaces.Box(0, 255, (16, 16, 3), np.uint8),
                                              "pos": spaces.Box(-1, 1, (2,), np.float32)})
        self.action_space = spaces.Box(LOW, HIGH)

    def observe(self) -> dict:
        img = np.zeros((16, 16, 3), np.uint8)
        img[..., :2] = np.uint8(np.round(127.5 + 127 * self.pos))
        return {"pixels": img, "pos": self.pos.copy()}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.observe(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + 0.3 * np.asarray(action, np.float32), -1, 1).astype(np.float32)
        return self.observe(), 0.0, bool(self.np_random.random() < 0.05), False, {}


class DotsPictures(Dots):
    """The same world seen only as pictures: no state to store."""

    def __init__(self, render_mode=None):
        super().__init__(render_mode)
        self.observation_space = self.observation_space["pixels"]

    def observe(self) -> np.ndarray:
        return super().observe()["pixels"]


# a string entry point: Minari keeps the env spec as JSON
gym.register("test/Dots-v0", entry_point=f"{__name__}:Dots", max_episode_steps=10)
gym.register("test/DotsPictures-v0", entry_point=f"{__name__}:DotsPictures", max_episode_steps=10)


def tiny(**kw) -> TrainConfig:
    return TrainConfig(steps=3, batch_size=4, window=4, diag_windows=8, val_every=0, log_every=1, checkpoint_every=3,
                       threads=1, warmup=1, val_fraction=0.25,
                       jepa=JEPAConfig(encoder=EncoderConfig(dim=8, channels=(4, 8), downsample=kw.pop("downsample", 4)),
                                       predictor=PredictorConfig(hidden=16)), **kw)


def read_all(path) -> dict:
    with h5py.File(path, "r") as f:
        return {**{k: f[k][()] for k in f}, "attrs": dict(f.attrs)}


def assert_same_file(a, b) -> None:
    x, y = read_all(a), read_all(b)
    assert x.keys() == y.keys() == {"obs", "action", "state", "episode_offsets", "attrs"}
    for k in ("obs", "action", "state", "episode_offsets"):
        assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape and np.array_equal(x[k], y[k]), k
    assert x["attrs"] == y["attrs"]


def test_amias_worlds_go_to_minari_and_back_bit_for_bit_and_train_to_the_same_weights(tmp_path):
    """Two-channel frames, a four-column state, no declared bounds (the world's 2.45): the file that comes back is
    the file that went, and three training steps on each give the same tensors, bit for bit."""
    src, back = tmp_path / "tworooms.h5", tmp_path / "back.h5"
    collect("amia/TwoRooms-v0", src, CollectConfig(episodes=6, steps=12, batch=3, seed=5), progress=False)
    to_minari(src, "amia/tworooms-v0")
    ds = load_minari("amia/tworooms-v0")
    assert ds.total_episodes == 6 and ds.total_steps == 6 * 12
    assert ds.observation_space["pixels"].shape == (64, 64, 2) and ds.observation_space["state"].shape == (4,)
    assert ds.action_space == spaces.Box(-2.45, 2.45, (2,), np.float32)
    ep, data = ds[1], read_all(src)
    assert np.array_equal(ep.observations["pixels"], data["obs"][13:26].transpose(0, 2, 3, 1))
    assert np.array_equal(ep.actions, data["action"][13:25]) and (ep.rewards == 0).all()
    assert ep.truncations.tolist() == [False] * 11 + [True] and not ep.terminations.any()
    assert ds.storage.metadata["amia"]["env_id"] == "amia/TwoRooms-v0"
    from_minari("amia/tworooms-v0", back)
    assert_same_file(src, back)
    runs = [tmp_path / "run_src", tmp_path / "run_back"]
    for data_file, run in zip((src, back), runs):
        train(None, run, tiny(), data=str(data_file), progress=False)
    (a, _, _), (b, _, _) = (read_checkpoint(r / "checkpoint.safetensors") for r in runs)
    assert a.keys() == b.keys() and any(k.startswith("model/") for k in a)
    assert all(torch_equal(a[k], b[k]) for k in a)


def torch_equal(x, y) -> bool:
    return x.dtype == y.dtype and x.shape == y.shape and bool((x == y).all())


def test_pictures_only_files_with_their_own_action_box_round_trip(tmp_path):
    """No state (S = 0): the observations are the bare picture; the declared per-dimension bounds come back."""
    src, back = tmp_path / "pics.h5", tmp_path / "back.h5"
    collect_gym("test/DotsPictures-v0", src, GymCollectConfig(episodes=5, steps=6, num_envs=2, image_size=16),
                progress=False)
    to_minari(src, "pics-v1")
    ds = load_minari("pics-v1")
    assert ds.observation_space == spaces.Box(0, 255, (16, 16, 3), np.uint8)
    assert np.array_equal(ds.action_space.low, LOW) and np.array_equal(ds.action_space.high, HIGH)
    from_minari("pics-v1", back)
    assert_same_file(src, back)
    assert read_info(back).state_names == ()


def test_a_dataset_from_minaris_own_data_collector_converts_and_trains(tmp_path):
    env = minari.DataCollector(gym.make("test/Dots-v0"))
    env.action_space.seed(0)
    for episode in range(8):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    env.create_dataset("test/dots-v0", description="Dots for amia's tests")
    ds = load_minari("test/dots-v0")
    out = tmp_path / "dots.h5"
    from_minari("test/dots-v0", out)
    info, data = read_info(out), read_all(out)
    lengths = [len(ep.rewards) + 1 for ep in ds.iterate_episodes()]
    assert info.episodes == 8 and np.diff(info.episode_offsets).tolist() == lengths
    assert info.env_id == "test/Dots-v0" and info.obs_shape == (3, 16, 16) and info.state_names == ("pos_0", "pos_1")
    assert info.action_low == tuple(LOW) and info.action_high == tuple(HIGH)
    assert json.loads(data["attrs"]["meta"])["frames_from"] == "obs:pixels"
    actions = np.concatenate([np.concatenate([ep.actions, np.zeros((1, 2), np.float32)]) for ep in ds.iterate_episodes()])
    assert np.array_equal(data["action"], actions)  # 0 on each episode's last frame
    # the frame shows the position stored beside it, and each position follows from the last by its action
    assert np.array_equal(data["obs"][:, :2, 0, 0], np.round(127.5 + 127 * data["state"]).astype(np.uint8))
    for a, b in zip(info.episode_offsets[:-1], info.episode_offsets[1:]):
        moved = np.clip(data["state"][a:b - 1] + 0.3 * data["action"][a:b - 1], -1, 1)
        assert np.allclose(data["state"][a + 1:b], moved, atol=1e-6)
    small = tmp_path / "dots8.h5"
    from_minari("test/dots-v0", small, image_size=8)
    assert read_info(small).obs_shape == (3, 8, 8)
    metrics = train(None, tmp_path / "run", tiny(downsample=1), data=str(out), progress=False)
    assert metrics["env_id"] == "test/Dots-v0" and metrics["steps"] == 3 and metrics["action_high"] == list(HIGH)
    errors = [v for k, v in metrics.items() if k.startswith("pred_error_repr_h")]
    assert "probe_r2" in metrics and errors and np.isfinite(errors).all()  # the stored position is probed


def test_observations_without_pictures_are_refused_by_name(tmp_path):
    from minari.data_collector import EpisodeBuffer

    buffers = [EpisodeBuffer(observations=np.zeros((4, 3), np.float32), actions=np.zeros((3, 2), np.float32),
                             rewards=np.zeros(3), terminations=np.zeros(3, bool), truncations=np.ones(3, bool), infos={})]
    minari.create_dataset_from_buffers("vectors-v0", buffers, observation_space=spaces.Box(-1, 1, (3,), np.float32),
                                       action_space=spaces.Box(-1, 1, (2,), np.float32))
    with pytest.raises(ValueError, match=r"minari:vectors-v0: observations Box\(-1.0, 1.0, \(3,\), float32\) hold no "
                                         r"picture; expected a uint8 Box \(H, W, C\)"):
        from_minari("vectors-v0", tmp_path / "v.h5")
    assert not list(tmp_path.glob("v.h5*"))


def test_convert_from_the_command_line_refuses_to_overwrite_and_names_what_is_missing(tmp_path, capsys):
    src, back = tmp_path / "d.h5", tmp_path / "back.h5"
    collect("amia/TwoRooms-v0", src, CollectConfig(episodes=2, steps=5, batch=2), progress=False)

    def run(*argv) -> tuple[int, str]:
        code = main(["convert", *argv])
        out = capsys.readouterr()
        return code, out.out + out.err

    assert run("--from", str(src), "--to", "minari:amia/d-v0") == (0, f"wrote {tmp_path}/minari/amia/d-v0\n")
    code, err = run("--from", str(src), "--to", "minari:amia/d-v0")
    assert code == 2 and err == "amia: error: minari:amia/d-v0 exists; pass --force to replace it\n"
    assert run("--from", str(src), "--to", "minari:amia/d-v0", "--force")[0] == 0
    assert run("--from", "minari:amia/d-v0", "--to", str(back))[0] == 0
    assert_same_file(src, back)
    code, err = run("--from", "minari:amia/d-v0", "--to", str(back))
    assert code == 2 and err == f"amia: error: {back} exists; pass --force to replace it\n"
    code, err = run("--from", "minari:amia/nowhere-v0", "--to", str(tmp_path / "n.h5"))
    assert code == 2 and err.startswith("amia: error: minari:amia/nowhere-v0: no such Minari dataset under ")
    assert err.count("\n") == 1 and not (tmp_path / "n.h5").exists()
    code, err = run("--from", "minari:no version", "--to", str(tmp_path / "n.h5"))
    assert code == 2 and err.startswith("amia: error: minari:no version: not a Minari dataset id; expected")
    code, err = run("--from", str(src), "--to", str(back))
    assert code == 2 and "one side minari:DATASET_ID" in err


def test_minari_versions_that_store_frames_as_jpeg_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(minari, "__version__", "0.5.3")
    with pytest.raises(ValueError, match=r"minari 0.5.3 stores frames as JPEG \(lossy\); amia needs minari>=0.5.4"):
        to_minari(tmp_path / "any.h5", "x-v0")
