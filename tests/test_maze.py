"""The maze world amia/Maze-v0: wall physics, doors, room distances, evaluation set, rendering, data collection.

The geometry is checked against hand-written numbers, not against the module's own helpers: walls 3 px thick
centred on x, y = 32 and 64 (faces at 30.5 / 33.5 and 62.5 / 65.5), doors 10 px high centred at 16.25, 48 and
79.75 along each wall (the middles of the rooms' sides), 2 px borders, agent radius 1.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from moves import random_actions, segment_crosses_obstacle

import amia  # noqa: F401  (registers the worlds with Gymnasium)
from amia.data import CollectConfig, WindowSampler, collect, read_info
from amia.envs import ENV_SPECS, env_spec, evaluation_set, make_world
from amia.envs.geometry import inside_obstacle
from amia.envs.maze import SERPENTINE, MazeSpec, MazeWorld

ENV = "amia/Maze-v0"
SIZE, R = 96, 1.0
WALLS = np.array([32.0, 64.0])
DOORS = np.array([16.25, 48.0, 79.75])
HALF_OPENING = 5.0 - R  # the agent's centre passes a door within this of the door's centre
CENTRES = np.arange(SIZE) + 0.5
# doors open in the default layout: the serpentine 0-1-2-5-4-3-6-7-8 plus 4-7; closed: 0-3, 1-4, 5-8
OPEN = {(0, 1), (1, 2), (2, 5), (4, 5), (3, 4), (3, 6), (6, 7), (7, 8), (4, 7)}


def hand_room(pos: np.ndarray) -> np.ndarray:
    """Room 3 * row + col of each position, from the wall centre lines."""
    col = (pos[:, 0] >= 32).astype(int) + (pos[:, 0] >= 64)
    row = (pos[:, 1] >= 32).astype(int) + (pos[:, 1] >= 64)
    return 3 * row + col


# ----------------------------------------------------------------------------------------------- physics


def test_no_move_ever_crosses_a_wall():
    n, steps = 1000, 50
    world = make_world(ENV, n, seed=123)
    world.reset(seed=123)
    spec = world.spec
    rng = np.random.default_rng(7)
    blocked = crossings = 0
    for _ in range(steps):
        old = world.pos.copy()
        action = random_actions(rng, n)
        _, info = world.step(action)
        new = world.pos.copy()
        np.testing.assert_array_equal(info["state"], new.astype(np.float32))
        # (a) never inside a wall grown by the agent's radius, never outside the frame
        assert not inside_obstacle(new, world.rects, R).any()
        assert np.all((new >= 2 + R) & (new <= SIZE - 2 - R))
        # (b) the straight path old -> new never passes through a wall
        assert not segment_crosses_obstacle(old, new, world.rects, R - 1e-5).any()
        # the move is the clipped action, possibly shortened: delta = f * clip(a), 0 <= f <= 1
        clipped = np.clip(action, -spec.max_step, spec.max_step)
        delta = new - old
        assert np.all(np.abs(delta) <= spec.max_step + 1e-5)
        cross = delta[:, 0] * clipped[:, 1] - delta[:, 1] * clipped[:, 0]
        np.testing.assert_allclose(cross, 0.0, atol=1e-4)
        dot = np.sum(delta * clipped, axis=1)
        assert np.all(dot >= -1e-4) and np.all(dot <= np.sum(clipped**2, axis=1) + 1e-4)
        # an unobstructed move goes the whole way (0.1 px extra margin: see test_envs.py)
        free = ~segment_crosses_obstacle(old, old + clipped, world.rects, R + 0.1)
        np.testing.assert_allclose(delta[free], clipped[free], atol=1e-4)
        blocked += int(np.sum(~free))
        # (c) changing room only through an open door, within its opening
        room_old, room_new = hand_room(old), hand_room(new)
        changed = np.flatnonzero(room_old != room_new)
        walls_crossed = np.zeros(changed.size, dtype=int)
        for axis in (0, 1):  # 0: across a vertical wall (x changes side), 1: across a horizontal wall
            side_old = np.searchsorted(WALLS, old[changed, axis], side="right")
            side_new = np.searchsorted(WALLS, new[changed, axis], side="right")
            across = side_old != side_new
            walls_crossed += across
            e = changed[across]
            assert np.all(np.abs(side_old[across] - side_new[across]) == 1)
            wall = WALLS[np.minimum(side_old[across], side_new[across])]
            frac = (wall - old[e, axis]) / delta[e, axis]
            along = old[e, 1 - axis] + frac * delta[e, 1 - axis]
            door = np.searchsorted(WALLS, along, side="right")  # which door of that wall
            assert np.all(np.abs(along - DOORS[door]) <= HALF_OPENING + 1e-6)
            for a, b in zip(room_old[e], room_new[e]):
                assert (min(a, b), max(a, b)) in OPEN
        assert np.all(walls_crossed == 1)  # never two walls at once (doors are far from the wall crossings)
        crossings += changed.size
    # the checks are only meaningful if walls were hit and doors used often
    assert blocked > 500
    assert crossings > 25


def test_reported_state_round_trips():
    """``set_state(state)`` then ``render()`` gives exactly the frame that led to that state (float32 state)."""
    n = 500
    world = make_world(ENV, n, seed=5)
    world.reset(seed=5)
    replay = make_world(ENV, n)
    rng = np.random.default_rng(11)
    for _ in range(40):
        obs, info = world.step(rng.uniform(-10, 10, size=(n, 2)))
        state = info["state"]
        assert state.dtype == np.float32 and state.shape == (n, 2)
        _, info2 = replay.set_state(state)
        np.testing.assert_array_equal(info2["state"], state)
        np.testing.assert_array_equal(replay.render(), obs)


@pytest.mark.parametrize("start, action, axis, limit", [
    ([16.25, 20.0], [0.0, 2.45], 1, 29.5),    # room 0 down into closed door 0-3 (horizontal wall y=32)
    ([48.0, 20.0], [0.0, 2.45], 1, 29.5),     # room 1 down into closed door 1-4
    ([48.0, 45.0], [0.0, -2.45], 1, 34.5),    # room 4 up into closed door 1-4
    ([79.75, 75.0], [0.0, -2.45], 1, 66.5),   # room 8 up into closed door 5-8 (horizontal wall y=64)
])
def test_closed_door_cannot_be_crossed(start, action, axis, limit):
    rng = np.random.default_rng(0)
    n = 64
    world = make_world(ENV, n)
    pos = np.tile(start, (n, 1))
    pos[:, 1 - axis] += rng.uniform(-HALF_OPENING, HALF_OPENING, n)  # anywhere across the door's opening
    world.set_state(pos)
    room = hand_room(pos)
    a = np.zeros((n, 2))
    a[:, axis] = 10 * np.sign(action[axis])  # oversized: clipped to the step limit
    a[:, 1 - axis] = rng.uniform(-0.3, 0.3, n)  # and a little sideways
    for _ in range(100):
        world.step(a)
        assert np.all(hand_room(world.pos) == room)
        assert np.all(world.room_index(world.pos) == room)
    # pressed against the wall's face
    np.testing.assert_allclose(world.pos[:, axis], limit, atol=1e-3)


@pytest.mark.parametrize("start, action, room_to", [
    ([20.0, 16.25], [2.45, 0.0], 1),     # door 0-1 (vertical wall x=32)
    ([79.75, 20.0], [0.0, 2.45], 5),     # door 2-5 (horizontal wall y=32)
    ([48.0, 75.0], [0.0, -2.45], 4),     # door 4-7 (horizontal wall y=64)
    ([75.0, 79.75], [-2.45, 0.0], 7),    # door 7-8
])
def test_open_door_can_be_crossed(start, action, room_to):
    world = make_world(ENV, 1)
    world.set_state(np.array([start]))
    for _ in range(8):
        world.step(np.array([action]))
    assert hand_room(world.pos)[0] == room_to and world.room_index(world.pos)[0] == room_to
    np.testing.assert_allclose(world.pos[0], np.array(start) + 8 * np.array(action), atol=1e-4)  # never slowed


def test_other_layout_is_one_line():
    """Columns instead of rows: the serpentine 0-3-6-7-4-1-2-5-8 closes the vertical doors 0-1, 3-4, 4-5, 7-8."""
    spec = MazeSpec(open_doors=((0, 3), (3, 6), (6, 7), (7, 4), (4, 1), (1, 2), (2, 5), (5, 8)))
    world = MazeWorld(3, spec)
    world.set_state(np.array([[20.0, 16.25], [20.0, 79.75], [45.0, 16.25]]))  # rooms 0, 6, 1
    for _ in range(100):
        world.step(np.array([[2.45, 0.0], [2.45, 0.0], [-2.45, 0.0]]))
    np.testing.assert_array_equal(world.room_index(world.pos), [0, 7, 1])
    assert world.room_distance(0, 8) == 8 and world.room_distance(0, 1) == 5 and world.room_distance(0, 3) == 1
    with pytest.raises(ValueError, match="neighbouring"):
        MazeSpec(open_doors=((2, 3),))  # 2 and 3 are not neighbours
    with pytest.raises(ValueError, match="neighbouring"):
        MazeSpec(open_doors=((0, 4),))


def test_step_and_set_state_validate():
    world = make_world(ENV, 2)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        world.set_state(np.full((2, 4), 10.0))
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        world.step(np.zeros(2))
    world.set_state(np.array([[10.0, 10.0], [50.0, 50.0]]))
    for bad in ([32.0, 10.0], [10.0, 64.0], [48.0, 32.0], [1.5, 50.0], [-3.0, 10.0], [100.0, 10.0]):
        with pytest.raises(ValueError, match="inside a wall or outside"):
            world.set_state(np.array([[10.0, 10.0], bad]))
    np.testing.assert_array_equal(world.state, [[10, 10], [50, 50]])  # unchanged
    world.set_state(np.array([[32.0, 16.25], [16.25, 64.0]]))  # in the doorways 0-1 and 3-6: allowed
    with pytest.raises(ValueError):
        MazeWorld(0)


# ----------------------------------------------------------------------------------------------- rooms and goals


def test_room_index_and_distance_table():
    world = make_world(ENV, 1)
    pos = np.array([[10, 10], [48, 10], [80, 10], [10, 48], [48, 48], [80, 48], [10, 80], [48, 80], [80, 80]], float)
    np.testing.assert_array_equal(world.room_index(pos), np.arange(9))
    # hand-counted doors along open doors
    expected = {(0, 0): 0, (0, 1): 1, (0, 3): 5, (0, 4): 4, (0, 6): 6, (0, 7): 5, (0, 8): 6, (1, 4): 3,
                (2, 6): 4, (3, 7): 2, (5, 8): 3, (6, 2): 4, (8, 0): 6, (4, 1): 3}
    for (a, b), d in expected.items():
        assert world.room_distance(a, b) == d, (a, b)
    t = world.distances
    assert t.shape == (9, 9) and np.array_equal(t, t.T) and np.all(np.diag(t) == 0)
    assert {(int(a), int(b)) for a, b in np.argwhere(t == 1) if a < b} == OPEN
    np.testing.assert_array_equal(world.room_distance(np.array([0, 4, 8]), np.array([8, 0, 0])), [6, 4, 6])


def test_sample_free_in_a_room():
    world = make_world(ENV, 900)
    rooms = np.repeat(np.arange(9), 100)
    pos = world.sample_free(world.rects, np.random.default_rng(0), room=rooms)
    np.testing.assert_array_equal(hand_room(pos), rooms)
    assert not inside_obstacle(pos, world.rects, R).any()


def test_evaluation_set():
    a = evaluation_set(ENV, 300, seed=0)
    b = evaluation_set(ENV, 300, seed=0)
    c = evaluation_set(ENV, 300, seed=1)
    world = make_world(ENV, 300)
    for k in ("start", "goal"):
        assert a[k].shape == (300, 2) and a[k].dtype == np.float32
        np.testing.assert_array_equal(a[k], b[k])
        assert not np.array_equal(a[k], c[k])
        p = a[k].astype(np.float64)
        assert not inside_obstacle(p, world.rects, R).any()
        assert np.all((p >= 2 + R) & (p <= SIZE - 2 - R))
        world.set_state(p)  # a valid state
    rs, rg = hand_room(a["start"]), hand_room(a["goal"])
    d = world.room_distance(rs, rg)
    assert np.all(d >= 3)
    assert set(np.unique(d)) == {3, 4, 5, 6}  # every distance up to the longest path occurs
    assert len(np.unique(rs)) == 9 and len(np.unique(rg)) == 9
    # straight-line distance is a poor guide: some pairs are in adjacent rooms behind a closed door
    assert np.any(np.abs(rs - rg) == 3) and np.any(np.linalg.norm(a["start"] - a["goal"], axis=1) < 20)


def test_spec_budget_and_registration():
    spec = env_spec(ENV)
    assert ENV in ENV_SPECS and isinstance(spec, MazeSpec)
    assert spec.max_steps == 400 and spec.max_step == 2.45 and spec.eval_min_doors == 3
    assert set(spec.open_doors[:8]) == set(SERPENTINE)
    assert env_spec("amia/TwoRooms-v0").max_steps == 200


# ----------------------------------------------------------------------------------------------- rendering


def test_render_walls_and_agent():
    world = make_world(ENV, 300, seed=3)
    obs, _ = world.reset(seed=3)
    assert obs.dtype == np.uint8 and obs.shape == (300, 2, SIZE, SIZE)
    walls = obs[0, 1]
    assert np.all(obs[:, 1] == walls)  # one fixed layout
    # the pixel centres inside the walls, from the hand-written geometry
    x, y = np.meshgrid(CENTRES, CENTRES)
    expected = (x < 2) | (x > 94) | (y < 2) | (y > 94)
    for k, c in enumerate(WALLS):
        for i, d in enumerate(DOORS):
            # vertical wall k beside row i, horizontal wall k beside column i
            v_open, h_open = (3 * i + k, 3 * i + k + 1) in OPEN, (3 * k + i, 3 * (k + 1) + i) in OPEN
            lo, hi = WALLS[i - 1] if i else 0, WALLS[i] if i < 2 else SIZE
            in_door_v = v_open & (np.abs(y - d) < 5)
            in_door_h = h_open & (np.abs(x - d) < 5)
            expected |= (np.abs(x - c) < 1.5) & (y >= lo) & (y <= hi) & ~in_door_v
            expected |= (np.abs(y - c) < 1.5) & (x >= lo) & (x <= hi) & ~in_door_h
    np.testing.assert_array_equal(walls, np.where(expected, 255, 0))
    assert walls[40, 31] == 255 and walls[48, 31] == 0 and walls[31, 16] == 255 and walls[31, 80] == 0
    # door rows 11..20 of the door at 16.25 are open; 10 and 21 are wall
    assert np.all(walls[11:21, 31] == 0) and walls[10, 31] == 255 and walls[21, 31] == 255
    # the agent blob's centroid is the position
    agent = obs[:, 0].astype(np.float64)
    mass = agent.sum(axis=(1, 2))
    cx = (agent.sum(axis=1) * CENTRES).sum(axis=1) / mass
    cy = (agent.sum(axis=2) * CENTRES).sum(axis=1) / mass
    np.testing.assert_allclose(cx, world.pos[:, 0], atol=0.1)
    np.testing.assert_allclose(cy, world.pos[:, 1], atol=0.1)
    assert np.all(obs[:, 0].max(axis=(1, 2)) >= 200)


# ----------------------------------------------------------------------------------------------- gymnasium, data


def test_gymnasium_make_and_time_limit():
    env = gym.make(ENV, render_mode="rgb_array")
    obs, info = env.reset(seed=42)
    assert env.observation_space.contains(obs) and obs.shape == (2, SIZE, SIZE)
    assert np.asarray(info["state"]).shape == (2,)
    np.testing.assert_allclose(env.action_space.high, [2.45, 2.45])
    _, info2 = env.reset(seed=42)
    np.testing.assert_array_equal(info2["state"], info["state"])
    _, info = env.reset(options={"state": [20.0, 16.25]})
    assert env.render().shape == (SIZE, SIZE, 3)
    truncated, t = False, 0
    for t in range(400):  # noqa: B007  (t is read after the loop)
        _, _, terminated, truncated, info = env.step(np.array([2.45, 0.0], np.float32))
        assert not terminated
        if truncated:
            break
    assert truncated and t == 399
    assert info["state"][0] == pytest.approx(94 - 1, abs=1e-3)  # through doors 0-1 and 1-2 to the border
    env.close()


def test_collect_and_load(tmp_path):
    path = collect(ENV, tmp_path / "maze.h5", CollectConfig(episodes=8, steps=20, batch=4, seed=2), progress=False)
    info = read_info(path)
    assert info.env_id == ENV and info.state_names == ("x", "y") and info.obs_shape == (2, SIZE, SIZE)
    assert info.episodes == 8 and info.frames == 8 * 21 and info.meta["spec"]["max_steps"] == 400
    batch = WindowSampler(path, 5, 16, seed=0).batch(0)
    assert batch["obs"].shape == (16, 6, 2, SIZE, SIZE) and batch["state"].shape == (16, 6, 2)
    assert batch["action"].shape == (16, 5, 2)
    # the stored states are the world's: replaying them renders the stored frames
    world = make_world(ENV, 16)
    for t in range(6):
        obs, _ = world.set_state(batch["state"][:, t])
        np.testing.assert_array_equal(obs, batch["obs"][:, t])
