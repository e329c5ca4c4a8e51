"""The pixel rooms worlds: wall physics, rendering, the Gymnasium wrapper, layouts and evaluation sets."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from moves import random_actions, segment_crosses_obstacle

import amia  # noqa: F401  (registers the worlds with Gymnasium)
from amia.envs import ENV_SPECS, env_spec, evaluation_set, make_world
from amia.envs.geometry import inside_obstacle
from amia.envs.rooms import RoomsWorld, wall_rectangles

ENV_IDS = ["amia/TwoRooms-v0", "amia/Wall-v0"]
CENTRES = np.arange(64) + 0.5


# ----------------------------------------------------------------------------------------------- physics


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_no_move_ever_crosses_a_wall(env_id):
    n, steps = 1000, 50
    world = make_world(env_id, n, seed=123)
    world.reset(seed=123)
    spec = world.spec
    r = spec.agent_radius
    half_opening = spec.door_height / 2 - r  # the agent's centre must pass within this of door_y
    rng = np.random.default_rng(7)
    blocked = crossings = 0
    for _ in range(steps):
        old = world.pos.copy()
        action = random_actions(rng, n)
        _, info = world.step(action)
        new = world.pos.copy()
        np.testing.assert_array_equal(info["state"][:, :2], new.astype(np.float32))
        # (a) never inside an obstacle grown by the agent's radius
        assert not inside_obstacle(new, world.rects, r).any()
        # (b) the straight path old -> new never passes through an obstacle
        assert not segment_crosses_obstacle(old, new, world.rects, r - 1e-5).any()
        # the move is the clipped action, possibly shortened: delta = f * clip(a), 0 <= f <= 1
        clipped = np.clip(action, -spec.max_step, spec.max_step)
        delta = new - old
        assert np.all(np.abs(delta) <= spec.max_step + 1e-5)  # positions are float32-exact
        cross = delta[:, 0] * clipped[:, 1] - delta[:, 1] * clipped[:, 0]
        np.testing.assert_allclose(cross, 0.0, atol=1e-4)
        dot = np.sum(delta * clipped, axis=1)
        assert np.all(dot >= -1e-4) and np.all(dot <= np.sum(clipped**2, axis=1) + 1e-4)
        # an unobstructed move goes the whole way (the 0.1 px extra margin makes the sampled test
        # conservative: samples are < 0.07 px apart, so a path that nicks a corner is counted as blocked)
        target = old + clipped
        free = ~segment_crosses_obstacle(old, target, world.rects, r + 0.1)
        np.testing.assert_allclose(delta[free], clipped[free], atol=1e-4)
        blocked += int(np.sum(~free))
        # (c) changing room only through the door
        side_old, side_new = old[:, 0] < world.wall_x, new[:, 0] < world.wall_x
        changed = side_old != side_new
        if changed.any():
            o, d = old[changed], delta[changed]
            frac = (world.wall_x[changed] - o[:, 0]) / d[:, 0]
            y_cross = o[:, 1] + frac * d[:, 1]
            assert np.all(np.abs(y_cross - world.door_y[changed]) <= half_opening + 1e-6)
            crossings += int(changed.sum())
    # the check is only meaningful if walls were hit and doors used often
    assert blocked > 500
    assert crossings > 25


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reported_state_is_replayable(env_id):
    """Every state the world reports (float32, as stored in datasets) is a valid ``set_state`` input that
    reproduces exactly the same frame, even right against a wall."""
    n = 500
    world = make_world(env_id, n, seed=5)
    world.reset(seed=5)
    replay = make_world(env_id, n)
    rng = np.random.default_rng(11)
    for _ in range(40):
        obs, info = world.step(rng.uniform(-10, 10, size=(n, 2)))
        state = info["state"]
        assert state.dtype == np.float32
        rects = wall_rectangles(world.spec, state[:, 2].astype(np.float64), state[:, 3].astype(np.float64))
        assert not inside_obstacle(state[:, :2].astype(np.float64), rects, world.spec.agent_radius).any()
        obs2, info2 = replay.set_state(state)
        np.testing.assert_array_equal(info2["state"], state)
        np.testing.assert_array_equal(obs2, obs)


def test_stops_at_wall_and_stays():
    world = make_world("amia/TwoRooms-v0", 1)
    world.set_state(np.array([[20.0, 10.0]]))
    xs = []
    for _ in range(10):
        _, info = world.step(np.array([[2.45, 0.0]]))
        xs.append(float(info["state"][0, 0]))
        assert info["state"][0, 1] == pytest.approx(10.0, abs=1e-6)
    stop = 32 - 1.5 - 1.0
    # 20 -> 22.45 -> 24.9 -> 27.35 -> 29.5 (stopped), then it stays
    np.testing.assert_allclose(xs[:3], [22.45, 24.9, 27.35], atol=1e-5)
    assert abs(xs[3] - stop) < 1e-3 and xs[3] <= stop
    assert all(x == xs[3] for x in xs[3:])
    # and it can leave again
    _, info = world.step(np.array([[-2.0, 0.0]]))
    assert info["state"][0, 0] == pytest.approx(xs[3] - 2.0, abs=1e-5)


def test_stops_at_wall_from_the_right_and_at_borders():
    world = make_world("amia/TwoRooms-v0", 3)
    world.set_state(np.array([[40.0, 50.0], [10.0, 10.0], [50.0, 40.0]]))
    for _ in range(20):
        world.step(np.array([[-2.45, 0.0], [0.0, -2.45], [2.45, 2.45]]))
    s = world.state
    assert abs(s[0, 0] - (32 + 1.5 + 1.0)) < 1e-3 and s[0, 0] >= 34.5  # right face of the wall
    assert abs(s[1, 1] - 3.0) < 1e-3 and s[1, 1] >= 3.0 and s[1, 0] == 10.0  # top border
    # a diagonal move into the bottom-right corner stops where it first touches a border
    assert s[2, 0] <= 61.0 and s[2, 1] <= 61.0
    assert min(61.0 - s[2, 0], 61.0 - s[2, 1]) < 1e-3


def test_passes_through_door():
    world = make_world("amia/TwoRooms-v0", 1)
    world.set_state(np.array([[28.0, 32.0]]))
    for _ in range(3):
        world.step(np.array([[2.45, 0.0]]))
    x, y = world.state[0, :2]
    assert x == pytest.approx(28 + 3 * 2.45, abs=1e-4) and x > 34
    assert y == pytest.approx(32.0, abs=1e-6)
    assert world.room_of(world.pos)[0] == 1


def test_door_edge_blocks_agent_too_wide_to_pass():
    # door opening y in (28, 36); the agent (radius 1) fits only with its centre in [29, 35]
    world = make_world("amia/TwoRooms-v0", 2)
    world.set_state(np.array([[28.0, 28.5], [28.0, 35.0]]))
    for _ in range(4):
        world.step(np.array([[2.45, 0.0], [2.45, 0.0]]))
    x = world.state[:, 0]
    assert abs(x[0] - 29.5) < 1e-3  # blocked by the door's upper edge
    assert x[1] > 34.5  # exactly at the edge of the opening: slides through


def test_action_is_clipped():
    world = make_world("amia/TwoRooms-v0", 1)
    world.set_state(np.array([[10.0, 40.0]]))
    _, info = world.step(np.array([[5.0, -5.0]]))
    np.testing.assert_allclose(info["state"][0, :2], [12.45, 37.55], atol=1e-5)
    _, info = world.step(np.array([[np.nan, np.inf]]))  # nan -> no move, inf -> clipped
    np.testing.assert_allclose(info["state"][0, :2], [12.45, 40.0], atol=1e-5)


def test_step_and_set_state_validate_shapes():
    world = make_world("amia/TwoRooms-v0", 1)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        world.set_state(np.zeros(3))
    with pytest.raises(ValueError, match=r"\(1, 3\)"):
        world.set_state(np.full((1, 3), 10.0))
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        world.set_state(np.full((2, 2), 10.0))
    with pytest.raises(ValueError, match=r"\(1, 2\)"):
        world.step(np.zeros(2))
    with pytest.raises(ValueError):
        RoomsWorld(0)


@pytest.mark.parametrize("pos", [[32.0, 10.0], [29.9, 20.0], [2.5, 40.0], [40.0, 61.5], [-5.0, 10.0], [70.0, 10.0]])
def test_set_state_into_wall_raises(pos):
    world = make_world("amia/TwoRooms-v0", 1)
    world.set_state(np.array([[10.0, 10.0]]))
    with pytest.raises(ValueError, match="inside a wall or outside"):
        world.set_state(np.array([pos]))
    np.testing.assert_array_equal(world.state[0, :2], [10.0, 10.0])  # unchanged


def test_set_state_on_the_boundary_is_allowed_and_blocks():
    world = make_world("amia/TwoRooms-v0", 1)
    world.set_state(np.array([[29.5, 10.0]]))  # touching the grown wall, not inside it
    world.step(np.array([[2.45, 0.3]]))
    assert world.state[0, 0] <= 29.5


def test_set_state_with_layout():
    world = make_world("amia/TwoRooms-v0", 2)
    obs, info = world.set_state(np.array([[40.0, 10.0, 20.0, 40.0], [10.0, 50.0, 44.0, 14.0]]))
    np.testing.assert_allclose(info["state"], [[40, 10, 20, 40], [10, 50, 44, 14]])
    # the wall of episode 0 is now around x = 20 (pixels 19, 20) with its door rows 36..43 open
    assert obs[0, 1, 10, 19] == 255 and obs[0, 1, 10, 20] == 255 and obs[0, 1, 10, 31] == 0
    assert obs[0, 1, 40, 19] == 0 and obs[0, 1, 35, 19] == 255 and obs[0, 1, 44, 19] == 255
    # and it blocks: moving left from x=40 at y=10 stops at 20 + 2.5
    for _ in range(10):
        world.step(np.array([[-2.45, 0.0], [0.0, 0.0]]))
    assert abs(world.state[0, 0] - 22.5) < 1e-3


# ----------------------------------------------------------------------------------------------- rendering


def test_render_shape_and_agent_centroid():
    world = make_world("amia/Wall-v0", 400, seed=3)
    world.reset(seed=3)
    rng = np.random.default_rng(0)
    pos = world.sample_free(world.rects, rng)
    obs, _ = world.set_state(pos)
    assert obs.dtype == np.uint8 and obs.shape == (400, 2, 64, 64)
    agent = obs[:, 0].astype(np.float64)
    mass = agent.sum(axis=(1, 2))
    cx = (agent.sum(axis=1) * CENTRES).sum(axis=1) / mass
    cy = (agent.sum(axis=2) * CENTRES).sum(axis=1) / mass
    away = np.all((world.pos > 6) & (world.pos < 58), axis=1)
    assert away.sum() > 200
    assert np.max(np.abs(cx - world.pos[:, 0])[away]) < 0.1
    assert np.max(np.abs(cy - world.pos[:, 1])[away]) < 0.1
    # a blob peaked near 255 (the nearest pixel centre is at most 0.5 px away in each axis)
    assert np.all(obs[:, 0].max(axis=(1, 2)) >= 200)
    # the brightest pixel is the one under the agent
    flat = obs[:, 0].reshape(400, -1).argmax(axis=1)
    iy, ix = np.divmod(flat, 64)
    assert np.all(np.abs(ix + 0.5 - world.pos[:, 0]) <= 1.0) and np.all(np.abs(iy + 0.5 - world.pos[:, 1]) <= 1.0)


def test_render_wall_channel_two_rooms():
    world = make_world("amia/TwoRooms-v0", 1)
    obs, _ = world.set_state(np.array([[10.0, 10.0]]))
    walls = obs[0, 1]
    # wall x in [30.5, 33.5]: pixel columns 31 and 32 have their centres inside; door rows y in (28, 36)
    door_rows = np.arange(28, 36)
    wall_rows = np.setdiff1d(np.arange(2, 62), door_rows)
    for col in (31, 32):
        assert np.all(walls[wall_rows, col] == 255)
        assert np.all(walls[door_rows, col] == 0)
    assert np.all(walls[2:62, 29] == 0) and np.all(walls[2:62, 34] == 0)
    # borders are 2 px
    expected_row = np.zeros(64, np.uint8)
    expected_row[[0, 1, 31, 32, 62, 63]] = 255
    np.testing.assert_array_equal(walls[10], expected_row)
    assert np.all(walls[[0, 1, 62, 63]] == 255)
    np.testing.assert_array_equal(walls[30], np.where(np.isin(np.arange(64), [0, 1, 62, 63]), 255, 0))


def test_render_wall_channel_matches_rectangles():
    world = make_world("amia/Wall-v0", 50, seed=9)
    obs, _ = world.reset(seed=9)
    gx, gy = np.meshgrid(CENTRES, CENTRES)
    centres = np.stack([gx.ravel(), gy.ravel()], axis=1)
    for e in range(50):
        inside = inside_obstacle(centres, np.repeat(world.rects[e:e + 1], len(centres), axis=0), 0.0)
        np.testing.assert_array_equal(obs[e, 1], np.where(inside, 255, 0).reshape(64, 64))


# ----------------------------------------------------------------------------------------------- gymnasium


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_make(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=42)
    assert env.observation_space.contains(obs)
    assert obs.shape == (2, 64, 64) and obs.dtype == np.uint8
    state = np.asarray(info["state"])
    assert state.shape == (4,)
    np.testing.assert_allclose(env.action_space.high, [2.45, 2.45])
    obs2, info2 = env.reset(seed=42)
    np.testing.assert_array_equal(obs2, obs)
    np.testing.assert_array_equal(info2["state"], info["state"])
    obs3, info3 = env.reset(seed=43)
    assert not np.array_equal(info3["state"], info["state"])
    obs, info = env.reset(options={"state": [10.0, 10.0]})
    np.testing.assert_allclose(info["state"][:2], [10.0, 10.0])
    agent = obs[0].astype(np.float64)
    assert (agent.sum(axis=0) * CENTRES).sum() / agent.sum() == pytest.approx(10.0, abs=0.1)
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, -0.5], np.float32))
    assert env.observation_space.contains(obs)
    assert reward == 0.0 and not terminated and not truncated
    np.testing.assert_allclose(info["state"][:2], [11.0, 9.5], atol=1e-5)
    env.close()


def test_gymnasium_reset_with_layout_and_time_limit():
    env = gym.make("amia/Wall-v0", render_mode="rgb_array")
    _, info = env.reset(seed=0, options={"state": [40.0, 10.0, 25.0, 30.0]})
    np.testing.assert_allclose(info["state"], [40, 10, 25, 30])
    rgb = env.render()
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert rgb[10, 40, 0] > 200  # the agent is red
    truncated = False
    for t in range(200):  # noqa: B007  (t is read after the loop)
        _, _, terminated, truncated, info = env.step(np.array([-2.45, 0.0], np.float32))
        assert not terminated
        assert info["state"][0] >= 25 + 1.5 + 1.0 - 1e-6  # the wall at x=25 blocks at y=10
        if truncated:
            break
    assert truncated and t == 199
    env.close()


def test_gymnasium_same_seed_same_trajectory():
    def rollout(seed):
        env = gym.make("amia/Wall-v0")
        _, info = env.reset(seed=seed)
        states = [info["state"]]
        rng = np.random.default_rng(0)
        for _ in range(20):
            states.append(env.step(rng.uniform(-2.45, 2.45, 2).astype(np.float32))[4]["state"])
        return np.array(states)

    np.testing.assert_array_equal(rollout(1), rollout(1))
    assert not np.array_equal(rollout(1), rollout(2))


# ----------------------------------------------------------------------------------------------- layouts and ids


def test_wall_layouts_vary_within_ranges():
    spec = env_spec("amia/Wall-v0")
    world = make_world("amia/Wall-v0", 500, seed=0)
    _, info = world.reset(seed=0)
    s = info["state"]
    assert np.all((s[:, 2] >= spec.wall_x_range[0]) & (s[:, 2] <= spec.wall_x_range[1]))
    assert np.all((s[:, 3] >= spec.door_y_range[0]) & (s[:, 3] <= spec.door_y_range[1]))
    assert s[:, 2].std() > 5 and s[:, 3].std() > 5
    _, info2 = world.reset()
    assert not np.array_equal(info2["state"][:, 2:], s[:, 2:])
    assert not inside_obstacle(world.pos, world.rects, spec.agent_radius).any()
    # the fixed world keeps its one layout
    two = make_world("amia/TwoRooms-v0", 50, seed=0)
    _, info = two.reset(seed=0)
    assert np.all(info["state"][:, 2] == 32.0) and np.all(info["state"][:, 3] == 32.0)


def test_unknown_env_id():
    for fn in (lambda: make_world("amia/TwoRoom-v0", 1), lambda: env_spec("amia/TwoRoom-v0")):
        with pytest.raises(ValueError) as e:
            fn()
        msg = str(e.value)
        assert "amia/TwoRoom-v0" in msg and "amia/TwoRooms-v0" in msg and "amia/Wall-v0" in msg
        assert "Did you mean 'amia/TwoRooms-v0'" in msg
    # the maze and the stochastic worlds have their own tests (test_maze.py, test_stochastic_worlds.py)
    assert set(ENV_SPECS) == set(ENV_IDS) | {"amia/Maze-v0", "amia/Gust-v0", "amia/Hazard-v0", "amia/Chaser-v0"}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_evaluation_set(env_id):
    spec = env_spec(env_id)
    a = evaluation_set(env_id, 300, seed=0)
    b = evaluation_set(env_id, 300, seed=0)
    c = evaluation_set(env_id, 300, seed=1)
    for k in ("start", "goal"):
        assert a[k].shape == (300, 4) and a[k].dtype == np.float32
        np.testing.assert_array_equal(a[k], b[k])
        assert not np.array_equal(a[k], c[k])
    start, goal = a["start"].astype(np.float64), a["goal"].astype(np.float64)
    np.testing.assert_array_equal(start[:, 2:], goal[:, 2:])
    rects = wall_rectangles(spec, start[:, 2], start[:, 3])
    for p in (start, goal):
        assert not inside_obstacle(p[:, :2], rects, spec.agent_radius).any()
        assert np.all((p[:, :2] > 0) & (p[:, :2] < spec.size))
    side_start, side_goal = np.sign(start[:, 0] - start[:, 2]), np.sign(goal[:, 0] - goal[:, 2])
    assert np.all(side_start != 0) and np.all(side_start == -side_goal)
    assert 100 < np.sum(side_start < 0) < 200  # both directions occur
    if spec.random_layout:
        assert start[:, 2].std() > 5
    else:
        assert np.all(start[:, 2] == 32.0)
