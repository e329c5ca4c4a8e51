"""Offline data: collection into HDF5 trajectory files, the validating reader, and the window sampler."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from amia.data import CollectConfig, DatasetError, TrajectoryWriter, WindowSampler, collect, read_info
from amia.envs import STATE_NAMES, make_world
from amia.envs.geometry import inside_obstacle
from amia.envs.rooms import RoomsWorld, wall_rectangles

MAX_STEP = 2.45


def read_all(path) -> dict:
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in f}
        data["attrs"] = dict(f.attrs)
    return data


@pytest.fixture(scope="module")
def two_rooms_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "two_rooms.h5"
    collect("amia/TwoRooms-v0", path, CollectConfig(episodes=6, steps=20, batch=4, seed=3), progress=False)
    return path


@pytest.fixture(scope="module")
def wall_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "wall.h5"
    collect("amia/Wall-v0", path, CollectConfig(episodes=10, steps=30, batch=4, seed=1, policy="uniform"),
            progress=False)
    return path


def write_synthetic(path, batches, obs_shape=(1, 2, 2)):
    """A file whose frames say where they come from: state = (episode, t, 0, 0), action = (1000 e + t, 1),
    obs = (7 e + t) % 256. ``batches`` is a list of (episodes, steps)."""
    w = TrajectoryWriter(path, "amia/TwoRooms-v0", obs_shape, 2, STATE_NAMES, meta={"synthetic": True})
    ep = 0
    for b, t in batches:
        e = ep + np.arange(b)[:, None]
        time = np.arange(t + 1)[None, :]
        state = np.zeros((b, t + 1, 4), np.float32)
        state[..., 0], state[..., 1] = e, time
        action = np.stack([np.broadcast_to(1000 * e + time[:, :t], (b, t)), np.ones((b, t))], axis=-1)
        obs = np.broadcast_to(((7 * e + time) % 256).astype(np.uint8)[:, :, None, None, None], (b, t + 1, *obs_shape))
        w.add_batch(np.ascontiguousarray(obs), action.astype(np.float32), state)
        ep += b
    w.close()
    return path


def check_windows(batch: dict, steps: int) -> np.ndarray:
    """Windows of a synthetic file are contiguous frames of one episode; returns (episode, t0) per window."""
    s, a, o = batch["state"], batch["action"], batch["obs"]
    n = s.shape[0]
    assert s.shape == (n, steps + 1, 4) and a.shape == (n, steps, 2)
    ep, t0 = s[:, 0, 0], s[:, 0, 1]
    np.testing.assert_array_equal(s[:, :, 0], np.repeat(ep[:, None], steps + 1, axis=1))  # one episode
    np.testing.assert_array_equal(s[:, :, 1], t0[:, None] + np.arange(steps + 1))  # contiguous
    np.testing.assert_array_equal(a[:, :, 0], 1000 * ep[:, None] + t0[:, None] + np.arange(steps))
    np.testing.assert_array_equal(a[:, :, 1], 1.0)  # never the 0 padding of an episode's last frame
    expected_obs = ((7 * ep[:, None] + t0[:, None] + np.arange(steps + 1)) % 256).astype(np.uint8)
    np.testing.assert_array_equal(o, np.broadcast_to(expected_obs[:, :, None, None, None], o.shape))
    return np.stack([ep, t0], axis=1).astype(int)


# ----------------------------------------------------------------------------------------------- collection


def test_read_info_counts(two_rooms_file):
    info = read_info(two_rooms_file)
    assert info.path == str(two_rooms_file)
    assert info.env_id == "amia/TwoRooms-v0"
    assert (info.frames, info.episodes) == (6 * 21, 6)
    assert info.obs_shape == (2, 64, 64) and info.action_dim == 2
    assert info.state_names == ("x", "y", "wall_x", "door_y")
    np.testing.assert_array_equal(info.episode_offsets, 21 * np.arange(7))
    assert info.episode_offsets.dtype == np.int64
    assert info.meta["collect"]["episodes"] == 6 and info.meta["collect"]["seed"] == 3
    assert info.meta["spec"]["max_step"] == MAX_STEP
    d = read_all(two_rooms_file)
    assert d["obs"].dtype == np.uint8 and d["obs"].shape == (126, 2, 64, 64)
    assert d["action"].dtype == np.float32 and d["action"].shape == (126, 2)
    assert d["state"].dtype == np.float32 and d["state"].shape == (126, 4)
    assert d["attrs"]["format"] == "amia.trajectories" and d["attrs"]["version"] == 1


@pytest.mark.parametrize("which", ["two_rooms_file", "wall_file"])
def test_stored_obs_are_renders_of_stored_states(which, request):
    path = request.getfixturevalue(which)
    d = read_all(path)
    world = RoomsWorld(len(d["state"]), make_world(read_info(path).env_id, 1).spec)
    obs, info = world.set_state(d["state"])
    np.testing.assert_array_equal(info["state"], d["state"])
    np.testing.assert_array_equal(obs, d["obs"])
    if which == "wall_file":  # each episode has its own constant layout
        off = read_info(path).episode_offsets
        for e in range(len(off) - 1):
            layout = d["state"][off[e]:off[e + 1], 2:]
            assert np.all(layout == layout[0])
        assert len(np.unique(d["state"][off[:-1], 2])) == len(off) - 1


@pytest.mark.parametrize("which", ["two_rooms_file", "wall_file"])
def test_state_changes_follow_actions(which, request):
    path = request.getfixturevalue(which)
    info, d = read_info(path), read_all(path)
    off = info.episode_offsets
    state, action = d["state"].astype(np.float64), d["action"].astype(np.float64)
    last = off[1:] - 1
    np.testing.assert_array_equal(d["action"][last], 0.0)  # nothing follows an episode's last frame
    steps = np.setdiff1d(np.arange(info.frames), last)
    a = action[steps]
    delta = state[steps + 1, :2] - state[steps, :2]
    assert np.all(np.abs(a) <= MAX_STEP + 1e-6) and np.all(np.abs(a) > 0)
    assert np.all(np.abs(delta) <= np.abs(a) + 1e-4)
    # the move is the action, shortened when a wall is in the way: delta = f * action with f in [0, 1]
    np.testing.assert_allclose(delta[:, 0] * a[:, 1] - delta[:, 1] * a[:, 0], 0.0, atol=1e-4)
    dot = np.sum(delta * a, axis=1)
    assert np.all(dot >= -1e-4) and np.all(dot <= np.sum(a * a, axis=1) + 1e-4)
    # and the whole action when the way is clear by a margin
    spec = make_world(info.env_id, 1).spec
    rects = wall_rectangles(spec, state[steps, 2], state[steps, 3])
    s = np.linspace(0, 1, 41)
    pts = state[steps, None, :2] + s[None, :, None] * a[:, None, :]
    blocked = inside_obstacle(pts.reshape(-1, 2), np.repeat(rects, len(s), axis=0), spec.agent_radius + 0.1)
    free = ~blocked.reshape(len(steps), len(s)).any(axis=1)
    assert free.sum() > 0.5 * len(steps)
    np.testing.assert_allclose(delta[free], a[free], atol=1e-4)


def test_collect_is_deterministic(tmp_path):
    cfg = CollectConfig(episodes=5, steps=8, batch=2, seed=11)
    a = read_all(collect("amia/Wall-v0", tmp_path / "a.h5", cfg, progress=False))
    b = read_all(collect("amia/Wall-v0", tmp_path / "b.h5", cfg, progress=False))
    assert a.keys() == b.keys()
    for k in ("obs", "action", "state", "episode_offsets"):
        np.testing.assert_array_equal(a[k], b[k])
    assert a["attrs"] == b["attrs"]
    cfg.seed = 12
    c = read_all(collect("amia/Wall-v0", tmp_path / "c.h5", cfg, progress=False))
    assert not np.array_equal(a["state"], c["state"])
    assert json.loads(c["attrs"]["meta"])["collect"]["seed"] == 12


@pytest.mark.parametrize("fail_at", [3, 15])  # during the first batch / after one batch was written
def test_collect_is_atomic(tmp_path, monkeypatch, fail_at):
    calls = {"n": 0}
    step = RoomsWorld.step

    def failing_step(self, action):
        calls["n"] += 1
        if calls["n"] > fail_at:
            raise RuntimeError("simulated crash")
        return step(self, action)

    monkeypatch.setattr(RoomsWorld, "step", failing_step)
    out = tmp_path / "sub" / "data.h5"
    with pytest.raises(RuntimeError, match="simulated crash"):
        collect("amia/TwoRooms-v0", out, CollectConfig(episodes=6, steps=10, batch=3), progress=False)
    assert calls["n"] == fail_at + 1
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # the .partial file is gone too
    # a failed collection leaves an existing file alone
    out.write_bytes(b"old contents")
    calls["n"] = 0
    with pytest.raises(RuntimeError):
        collect("amia/TwoRooms-v0", out, CollectConfig(episodes=6, steps=10, batch=3), progress=False)
    assert out.read_bytes() == b"old contents"
    assert sorted(p.name for p in out.parent.iterdir()) == ["data.h5"]


def test_collect_rejects_bad_config(tmp_path):
    with pytest.raises(ValueError, match="policy"):
        collect("amia/TwoRooms-v0", tmp_path / "x.h5", CollectConfig(policy="levy"), progress=False)
    with pytest.raises(ValueError, match=">= 1"):
        collect("amia/TwoRooms-v0", tmp_path / "x.h5", CollectConfig(episodes=0), progress=False)
    with pytest.raises(ValueError, match="unknown env id"):
        collect("amia/Nope-v0", tmp_path / "x.h5", CollectConfig(episodes=1, steps=1), progress=False)
    with pytest.raises(ValueError, match="collect.policy=doors needs a rooms world"):
        collect("amia/Maze-v0", tmp_path / "x.h5", CollectConfig(policy="doors", episodes=1, steps=1), progress=False)
    assert list(tmp_path.iterdir()) == []


def door_crossings(path, episodes: int) -> np.ndarray:
    with h5py.File(path) as f:
        st = f["state"][:].reshape(episodes, -1, 4)
    side = np.sign(st[..., 0] - st[..., 2])
    return (side[:, 1:] != side[:, :-1]).sum(1)


def test_doors_policy_threads_the_door_the_random_walk_misses(tmp_path):
    """Wall-v0, 200 episodes of 100 steps: the drifting walk crosses in under 15% of the episodes (7.5% in our
    1,000-episode set); with half the episodes door-seeking, at least 45% cross, through the door (never the wall)."""
    cfg = CollectConfig(episodes=200, steps=100, batch=100)
    drift = door_crossings(collect("amia/Wall-v0", tmp_path / "drift.h5", cfg, progress=False), 200)
    doors_path = collect("amia/Wall-v0", tmp_path / "doors.h5", CollectConfig(**{**cfg.__dict__, "policy": "doors"}),
                         progress=False)
    doors = door_crossings(doors_path, 200)
    assert (drift > 0).mean() < 0.15 and (doors > 0).mean() >= 0.45
    with h5py.File(doors_path) as f:  # every crossing happens within the door's opening
        st = f["state"][:].reshape(200, -1, 4)
    side = np.sign(st[..., 0] - st[..., 2])
    e, t = np.nonzero(side[:, 1:] != side[:, :-1])
    y = (st[e, t, 1] + st[e, t + 1, 1]) / 2
    assert np.all(np.abs(y - st[e, t, 3]) < 4.0)


# ----------------------------------------------------------------------------------------------- sampler


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory):
    # 20 episodes of varying lengths, including some too short for a 4-step window (4 frames)
    batches = [(3, 5), (4, 12), (2, 3), (5, 9), (3, 4), (3, 20)]
    return write_synthetic(tmp_path_factory.mktemp("syn") / "syn.h5", batches)


def test_window_layout_and_uniform_coverage(synthetic_file):
    steps = 4
    info = read_info(synthetic_file)
    lengths = np.diff(info.episode_offsets)
    sampler = WindowSampler(synthetic_file, steps=steps, batch_size=32, seed=0)
    np.testing.assert_array_equal(sampler.episodes, np.flatnonzero(lengths >= steps + 1))
    counts = {}
    for step in range(200):
        for ep, t0 in check_windows(sampler.batch(step), steps):
            assert lengths[ep] >= steps + 1
            assert 0 <= t0 <= lengths[ep] - 1 - steps
            counts[ep, t0] = counts.get((ep, t0), 0) + 1
    valid = {(e, t) for e in range(len(lengths)) for t in range(lengths[e] - steps)}
    assert set(counts) == valid  # every window, including each episode's first and last, is drawn
    c = np.array(list(counts.values()))
    mean = 200 * 32 / len(valid)
    assert c.min() > 0.5 * mean and c.max() < 1.6 * mean  # roughly uniform over windows


def test_sampler_is_deterministic(synthetic_file):
    a = WindowSampler(synthetic_file, steps=3, batch_size=16, seed=5)
    b = WindowSampler(synthetic_file, steps=3, batch_size=16, seed=5)
    for step in (0, 7, 3):
        for k in ("obs", "action", "state"):
            np.testing.assert_array_equal(a.batch(step, rank=1)[k], b.batch(step, rank=1)[k])
    ref = a.batch(7, rank=0)["state"]
    assert not np.array_equal(ref, a.batch(7, rank=1)["state"])
    assert not np.array_equal(ref, a.batch(8, rank=0)["state"])
    c = WindowSampler(synthetic_file, steps=3, batch_size=16, seed=6)
    assert not np.array_equal(ref, c.batch(7, rank=0)["state"])


def test_episode_subset(synthetic_file):
    subset = [1, 4, 9, 10, 17]
    sampler = WindowSampler(synthetic_file, steps=2, batch_size=64, episodes=subset, seed=0)
    seen = set()
    for step in range(20):
        seen |= set(check_windows(sampler.batch(step), 2)[:, 0].tolist())
    assert seen == set(subset)
    with pytest.raises(ValueError, match="syn.h5"):
        WindowSampler(synthetic_file, steps=25, batch_size=4)  # no episode is long enough


def test_chunked_streaming(tmp_path):
    # 64 equal episodes of 10 frames; blocks of 4 episodes (40 frames); a budget of 100 frames holds 2 blocks
    path = write_synthetic(tmp_path / "eq.h5", [(64, 9)])
    steps, budget = 3, 100
    sampler = WindowSampler(path, steps=steps, batch_size=8, chunk_frames=budget, seed=0, block_episodes=4)
    assert not sampler.single_chunk and sampler.blocks_per_chunk == 2
    per_chunk = []
    for step in range(60):
        chunk = sampler.chunk(step)
        assert all(len(chunk[k]) <= budget for k in ("obs", "action", "state"))
        chunk_eps = set(np.unique(chunk["state"][:, 0]).astype(int).tolist())
        assert len(chunk_eps) == 8
        assert all({4 * (e // 4) + i for i in range(4)} <= chunk_eps for e in chunk_eps)  # whole blocks
        batch_eps = set(check_windows(sampler.batch(step), steps)[:, 0].tolist())
        assert batch_eps <= chunk_eps
        if step % sampler.steps_per_chunk == 0:
            per_chunk.append(frozenset(chunk_eps))
    assert len(set(per_chunk)) >= 0.7 * len(per_chunk)  # different chunk ids load different episodes
    assert set().union(*per_chunk) == set(range(64))
    # a sampler that jumps straight to a step sees the same batch as one that walked there
    fresh = WindowSampler(path, steps=steps, batch_size=8, chunk_frames=budget, seed=0, block_episodes=4)
    for step in (37, 4, 59):
        np.testing.assert_array_equal(fresh.batch(step)["state"], sampler.batch(step)["state"])


def test_chunked_streaming_with_subset(tmp_path):
    path = write_synthetic(tmp_path / "eq.h5", [(64, 9)])
    odd = np.arange(1, 64, 2)
    sampler = WindowSampler(path, steps=3, batch_size=8, episodes=odd, chunk_frames=100, seed=0, block_episodes=4)
    seen = set()
    for step in range(80):
        assert len(sampler.chunk(step)["state"]) <= 100
        seen |= set(check_windows(sampler.batch(step), 3)[:, 0].tolist())
    assert seen <= set(odd.tolist()) and len(seen) > 24


def test_windows_of_a_collected_file(wall_file):
    sampler = WindowSampler(wall_file, steps=5, batch_size=64, seed=0)
    b = sampler.batch(0)
    s, a = b["state"].astype(np.float64), b["action"].astype(np.float64)
    delta = s[:, 1:, :2] - s[:, :-1, :2]
    assert np.all(np.abs(delta) <= np.abs(a) + 1e-4)
    np.testing.assert_allclose(delta[..., 0] * a[..., 1] - delta[..., 1] * a[..., 0], 0.0, atol=1e-4)
    assert np.all(s[:, :, 2:] == s[:, :1, 2:])  # one layout per window: never straddles episodes
    world = RoomsWorld(64 * 6, make_world("amia/Wall-v0", 1).spec)
    obs, _ = world.set_state(b["state"].reshape(-1, 4))
    np.testing.assert_array_equal(obs.reshape(b["obs"].shape), b["obs"])


# ----------------------------------------------------------------------------------------------- bad files


@pytest.fixture()
def good_file(tmp_path, synthetic_file):
    path = tmp_path / "good.h5"
    shutil.copy(synthetic_file, path)
    read_info(path)
    return path


def replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)


def expect_error(path, *words):
    with pytest.raises(DatasetError) as e:
        read_info(path)
    msg = str(e.value)
    assert str(path) in msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    with pytest.raises(DatasetError):  # the sampler checks its file the same way
        WindowSampler(path, steps=1, batch_size=1)


@pytest.mark.parametrize("name", ["obs", "action", "state", "episode_offsets"])
def test_missing_dataset(good_file, name):
    with h5py.File(good_file, "a") as f:
        del f[name]
    expect_error(good_file, f"'{name}'", "missing")


def test_wrong_dtype(good_file):
    with h5py.File(good_file, "a") as f:
        replace(f, "obs", f["obs"][()].astype(np.float32))
    expect_error(good_file, "obs", "uint8", "float32")


def test_wrong_offsets_dtype(good_file):
    with h5py.File(good_file, "a") as f:
        replace(f, "episode_offsets", f["episode_offsets"][()].astype(np.float64))
    expect_error(good_file, "episode_offsets", "int64")


def test_wrong_shape(good_file):
    with h5py.File(good_file, "a") as f:
        obs = f["obs"][()]
        replace(f, "obs", obs.reshape(obs.shape[0], obs.shape[1], -1))
    expect_error(good_file, "obs", "4 dimensions")


def test_inconsistent_lengths(good_file):
    with h5py.File(good_file, "a") as f:
        replace(f, "state", f["state"][:-3])
    expect_error(good_file, "same length")


@pytest.mark.parametrize("offsets", ["not rising", "short end", "not from 0", "single"])
def test_bad_episode_offsets(good_file, offsets):
    with h5py.File(good_file, "a") as f:
        off = f["episode_offsets"][()]
        bad = {"not rising": np.concatenate([off[:3], off[1:2], off[3:]]), "short end": off[:-1],
               "not from 0": off[1:], "single": off[:1]}[offsets]
        replace(f, "episode_offsets", bad.astype(np.int64))
    expect_error(good_file, "episode_offsets")


def test_wrong_format_and_version(good_file, tmp_path):
    with h5py.File(good_file, "a") as f:
        f.attrs["format"] = "someone.else"
    expect_error(good_file, "'format'", "someone.else")
    other = tmp_path / "v2.h5"
    shutil.copy(good_file, other)
    with h5py.File(other, "a") as f:
        f.attrs["format"] = "amia.trajectories"
        f.attrs["version"] = 2
    expect_error(other, "'version'")


def test_missing_or_wrong_state_names(good_file, tmp_path):
    other = tmp_path / "names.h5"
    shutil.copy(good_file, other)
    with h5py.File(good_file, "a") as f:
        del f.attrs["state_names"]
    expect_error(good_file, "state_names")
    with h5py.File(other, "a") as f:
        f.attrs["state_names"] = json.dumps(["x", "y"])  # the state has 4 columns
    expect_error(other, "state_names")
    with h5py.File(other, "a") as f:
        f.attrs["state_names"] = json.dumps(list(STATE_NAMES))
        f.attrs["meta"] = "{not json"
    expect_error(other, "'meta'")


def test_truncated_file(tmp_path):
    path = tmp_path / "big.h5"
    w = TrajectoryWriter(path, "amia/TwoRooms-v0", (2, 16, 16), 2, STATE_NAMES)
    rng = np.random.default_rng(0)
    w.add_batch(rng.integers(0, 256, (4, 51, 2, 16, 16), dtype=np.uint8), rng.normal(size=(4, 50, 2)),
                rng.normal(size=(4, 51, 4)).astype(np.float32))
    w.close()
    assert read_info(path).frames == 204
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated")


def test_path_that_does_not_exist(tmp_path):
    expect_error(tmp_path / "nope.h5", "no such file")


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("this is not an HDF5 file\n" * 100)
    expect_error(path, "HDF5")
