"""The stochastic worlds of issue #18 (Sec. 4.8, Sec. 5): gust (two outcomes), hazard (rare fall into a pit),
chaser (wandering or pursuing adversary); their true outcome distributions, failures and evaluation sets."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import amia  # noqa: F401  (registers the worlds with Gymnasium)
from amia.data.collect import CollectConfig, collect
from amia.data.dataset import check_world, read_info
from amia.envs import ENV_SPECS, evaluation_set, make_world, start_episodes
from amia.envs.chaser import DIRECTIONS
from amia.envs.hazard import HazardSpec
from amia.envs.outcomes import true_outcomes
from amia.eval.protocol import EvalConfig, evaluate_actor, run_protocol

STOCHASTIC = ["amia/Gust-v0", "amia/Hazard-v0", "amia/Chaser-v0"]


class ConstantActor:
    """The simplest actor (``amia.agent.actor.Actor``): the same action every step."""

    periods, warmup_steps = {"plan": 1}, 0

    def __init__(self, action=(0.0, 0.0)):
        self.action = np.asarray(action, dtype=np.float32)

    def reset(self, goal_obs, seed=0, record=0, **task_inputs):
        self.n = len(goal_obs)

    def act(self, obs):
        return np.tile(self.action, (len(obs), 1))

    def report(self):
        return {}

    def describe(self):
        return {"planner": "constant", "surprise_watch": False}


# ----------------------------------------------------------------------------------------------- gust


def test_gust_pushes_down_or_up_with_the_given_probabilities():
    b, rounds = 2000, 10
    world = make_world("amia/Gust-v0", b, seed=0)
    start, action = np.tile([26.0, 32.0], (b, 1)), np.tile([2.45, 0.0], (b, 1))
    down = 0
    for _ in range(rounds):
        world.set_state(start)
        futures, probs = true_outcomes(world, action)
        np.testing.assert_array_equal(world.state, start.astype(np.float32))  # outcomes leave the world alone
        assert futures.shape == (b, 2, 2) and probs.shape == (b, 2)
        np.testing.assert_allclose(probs, np.tile([0.7, 0.3], (b, 1)))
        _, info = world.step(action)
        is_down = np.all(info["state"] == futures[:, 0], axis=1)
        is_up = np.all(info["state"] == futures[:, 1], axis=1)
        assert np.all(is_down ^ is_up)  # every next state is exactly one of the outcomes
        down += is_down.sum()
    np.testing.assert_allclose(futures[0], [[28.45, 42.0], [28.45, 22.0]], atol=1e-5)
    assert abs(down / (b * rounds) - 0.7) < 0.02


def test_gust_outside_the_band_and_at_the_border():
    world = make_world("amia/Gust-v0", 3, seed=1)
    world.set_state(np.array([[10.0, 32.0], [30.0, 58.0], [30.0, 5.0]]))
    futures, probs = true_outcomes(world, np.zeros((3, 2)))
    np.testing.assert_array_equal(probs[0], [1.0, 0.0])
    np.testing.assert_array_equal(futures[0, 0], [10.0, 32.0])
    assert 60.9 < futures[1, 0, 1] <= 61.0  # pushed down, stopped at the border
    assert 3.0 <= futures[2, 1, 1] < 3.1  # pushed up, stopped at the border
    _, info = world.step(np.zeros((3, 2)))
    np.testing.assert_array_equal(info["state"][0], [10.0, 32.0])


def test_gust_band_is_drawn_faintly():
    frame = make_world("amia/Gust-v0", 1).reset(seed=0)[0][0, 1]
    assert frame[32, 32] == 60 and frame[32, 10] == 0 and frame[32, 0] == 255 and frame[0, 32] == 255


# ----------------------------------------------------------------------------------------------- hazard


def test_hazard_gust_frequency_and_outcomes():
    b, rounds = 2500, 20
    world = make_world("amia/Hazard-v0", b, seed=2)
    start = np.tile([30.0, 25.0, 0.0], (b, 1))
    falls = 0
    for _ in range(rounds):
        world.set_state(start)
        futures, probs = true_outcomes(world, np.zeros((b, 2)))
        np.testing.assert_allclose(probs.sum(1), 1.0)
        np.testing.assert_allclose(probs[0], [0.985, 0.015])
        np.testing.assert_array_equal(futures[0], [[30.0, 25.0, 0.0], [30.0, 5.0, 1.0]])
        _, info = world.step(np.zeros((b, 2)))
        fell = info["state"][:, 2] == 1
        np.testing.assert_array_equal(info["state"][fell], np.tile(futures[0, 1], (fell.sum(), 1)))
        np.testing.assert_array_equal(info["state"][~fell], np.tile(futures[0, 0], ((~fell).sum(), 1)))
        np.testing.assert_array_equal(world.failed, fell)
        falls += fell.sum()
    assert abs(falls / (b * rounds) - 0.015) < 0.003


def test_a_fallen_agent_never_moves_and_walking_into_the_pit_is_falling():
    world = make_world("amia/Hazard-v0", 2, seed=3)
    world.set_state(np.array([[12.0, 6.0, 0.0], [12.0, 50.0, 0.0]]))  # left of the pit; far below it
    for _ in range(3):
        _, info = world.step(np.array([[2.45, 0.0], [2.45, 0.0]]))
    assert info["state"][0, 2] == 1 and info["state"][1, 2] == 0 and world.failed.tolist() == [True, False]
    x = info["state"][0, 0]
    assert 18.0 < x < 19.5
    rng = np.random.default_rng(0)
    for _ in range(20):
        frame, info = world.step(rng.uniform(-3, 3, size=(2, 2)))
        np.testing.assert_array_equal(info["state"][0], [x, 6.0, 1.0])
    assert frame[0, 0, 6, int(x)] > 200  # the frame still shows it in the pit
    futures, probs = true_outcomes(world, np.ones((2, 2)))
    np.testing.assert_array_equal(futures[0, 0], [x, 6.0, 1.0])
    np.testing.assert_array_equal(probs[0], [1.0, 0.0])
    world.set_state(np.array([[12.0, 20.0, 0.0], [30.0, 6.0, 0.0]]))  # flags reset; inside the pit is fallen
    assert world.failed.tolist() == [False, True]
    with pytest.raises(ValueError, match="fallen must be 0 or 1"):
        world.set_state(np.array([[12.0, 20.0, 0.5], [12.0, 20.0, 0.0]]))


# ----------------------------------------------------------------------------------------------- chaser


def test_wandering_chaser_picks_each_direction_equally_often():
    b, steps = 2000, 20
    world = make_world("amia/Chaser-v0", b, seed=4)
    world.set_state(np.tile([5.0, 5.0, 32.0, 32.0, 0.0], (b, 1)))
    counts = np.zeros(8)
    for _ in range(steps):
        old = world.chaser.copy()
        world.step(np.zeros((b, 2)))
        move = world.chaser - old
        np.testing.assert_allclose(np.linalg.norm(move, axis=1), 1.5, atol=1e-5)
        k = np.argmax(move @ DIRECTIONS.T, axis=1)
        counts += np.bincount(k, minlength=8)
    assert not world.failed.any()
    np.testing.assert_allclose(counts / counts.sum(), 1 / 8, atol=0.01)
    futures, probs = true_outcomes(world, np.zeros((b, 2)))
    assert futures.shape == (b, 8, 5) and np.allclose(probs, 1 / 8)


def test_pursuing_chaser_closes_in_and_a_capture_freezes_both():
    angles = np.linspace(-np.pi, np.pi, 16, endpoint=False)
    b = len(angles)
    world = make_world("amia/Chaser-v0", b, evaluation=True)
    agent = np.array([32.0, 32.0])
    chaser = agent + 20.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    world.set_state(np.concatenate([np.tile(agent, (b, 1)), chaser, np.zeros((b, 1))], axis=1))
    gap = np.linalg.norm(world.chaser - agent, axis=1)
    for _ in range(8):
        futures, probs = true_outcomes(world, np.zeros((b, 2)))
        _, info = world.step(np.zeros((b, 2)))
        np.testing.assert_array_equal(info["state"], futures[:, 0])
        new_gap = np.linalg.norm(world.chaser - agent, axis=1)
        assert np.all(gap - new_gap > 1.35) and np.all(gap - new_gap < 1.5 + 1e-5)
        gap = new_gap
    world = make_world("amia/Chaser-v0", 2, evaluation=True)
    world.set_state(np.array([[30.0, 30.0, 35.0, 30.0, 0.0], [10.0, 10.0, 40.0, 40.0, 0.0]]))
    _, info = world.step(np.zeros((2, 2)))
    caught = info["state"][0].copy()
    assert caught[4] == 1 and caught[2] == pytest.approx(33.5) and world.failed.tolist() == [True, False]
    for _ in range(5):
        _, info = world.step(np.full((2, 2), 2.45))
        np.testing.assert_array_equal(info["state"][0], caught)
    world.set_state(np.array([[30.0, 30.0, 45.0, 30.0, 0.0], [10.0, 10.0, 40.0, 40.0, 0.0]]))
    assert not world.failed.any()  # the flags come from the state


def test_chaser_evaluation_set_is_reproducible_and_starts_the_chaser_20_to_30_px_away():
    a, b, c = (evaluation_set("amia/Chaser-v0", 300, seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a["start"], b["start"])
    assert not np.array_equal(a["start"], c["start"])
    assert a["start"].shape == (300, 5) and a["start"].dtype == np.float32
    np.testing.assert_array_equal(a["start"], a["goal"])
    gap = np.linalg.norm(a["start"][:, :2] - a["start"][:, 2:4], axis=1)
    assert np.all((gap >= 20) & (gap <= 30)) and np.all(a["start"][:, 4] == 0)
    assert np.all((a["start"][:, :2] >= 10) & (a["start"][:, :2] <= 54))
    assert np.all((a["start"][:, 2:4] > 3) & (a["start"][:, 2:4] < 61))


@pytest.mark.parametrize("env_id", STOCHASTIC)
def test_evaluation_sets_and_seeded_evaluation_worlds(env_id):
    spec = ENV_SPECS[env_id]
    pairs = evaluation_set(env_id, 50, seed=3)
    np.testing.assert_array_equal(pairs["start"], evaluation_set(env_id, 50, seed=3)["start"])
    runs = []
    for _ in range(2):
        world, goal_obs = start_episodes(env_id, pairs, seed=5)
        assert world.evaluation and goal_obs.shape == (50, *world.obs_shape)
        for _ in range(30):
            _, info = world.step(np.tile([2.45, 0.5], (50, 1)))
        runs.append(info["state"])
    np.testing.assert_array_equal(runs[0], runs[1])
    if env_id == "amia/Gust-v0":
        assert np.all((pairs["start"][:, 0] >= 6) & (pairs["start"][:, 0] <= 20))
        assert np.all((pairs["goal"][:, 0] >= 44) & (pairs["goal"][:, 0] <= 58))
    if env_id == "amia/Hazard-v0":
        for key, box in (("start", spec.start_box), ("goal", spec.goal_box)):
            p = pairs[key]
            assert np.all((p[:, 0] >= box[0]) & (p[:, 0] <= box[2]) & (p[:, 1] >= box[1]) & (p[:, 1] <= box[3]))


# ----------------------------------------------------------------------------------------------- plumbing


@pytest.mark.parametrize("env_id", STOCHASTIC)
@pytest.mark.parametrize("policy", ["drift", "uniform"])
def test_collect_and_gymnasium(env_id, policy, tmp_path):
    path = collect(env_id, tmp_path / "d.h5", CollectConfig(episodes=4, steps=5, batch=4, policy=policy),
                   progress=False)
    info = read_info(path)
    check_world(info, env_id)
    world = make_world(env_id, 1)
    assert info.obs_shape == world.obs_shape and info.state_names == tuple(world.state_names)
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    assert obs.shape == world.obs_shape and info["state"].shape == (len(world.state_names),)
    obs, _, _, _, info = env.step(env.action_space.sample())
    assert obs.shape == world.obs_shape and info["failed"] in (False, True)
    rgb = env.render()
    assert rgb.shape == (64, 64, 3)
    if env_id == "amia/Chaser-v0":
        cx, cy = info["state"][2:4].astype(int)
        assert rgb[cy, cx, 2] > 150


def test_protocol_counts_falls_as_failures(monkeypatch):
    # starts from x 10 to 30 below the pit's level, walking straight up: those right of x = 18 fall in
    monkeypatch.setitem(ENV_SPECS, "amia/HazardTest-v0", HazardSpec(start_box=(10.0, 12.0, 30.0, 20.0)))
    cfg = EvalConfig(episodes=40, seed=1, max_steps=20, timing_calls=0)
    actor = ConstantActor((0.0, -2.45))
    out = run_protocol(actor, "amia/HazardTest-v0", cfg, progress=False)
    pairs = evaluation_set("amia/HazardTest-v0", 40, seed=1)
    expected = pairs["start"][:, 0] > 18.0
    assert 5 < expected.sum() < 35
    np.testing.assert_array_equal(out["failed"], expected)
    assert out["failure_name"] == "hazard" and not (out["success"] & out["failed"]).any()
    r = evaluate_actor(actor, "amia/HazardTest-v0", cfg, progress=False)
    assert r["failure_rate"] == r["hazard_rate"] == pytest.approx(expected.mean())
    still = evaluate_actor(ConstantActor(), "amia/Hazard-v0", EvalConfig(episodes=10, max_steps=5, timing_calls=0),
                           progress=False)
    assert still["failure_rate"] == 0.0 and still["hazard_rate"] == 0.0


def test_protocol_success_in_the_chaser_world_is_never_being_caught():
    cfg = EvalConfig(episodes=8, seed=0, max_steps=40, timing_calls=0)
    out = run_protocol(ConstantActor(), "amia/Chaser-v0", cfg, progress=False)
    assert out["failed"].all() and not out["success"].any()  # a pursuer 20-30 px away catches a still agent
    short = evaluate_actor(ConstantActor(), "amia/Chaser-v0", EvalConfig(episodes=8, max_steps=3, timing_calls=0),
                           progress=False)
    assert short["capture_rate"] == short["failure_rate"] == 0.0 and short["success_rate"] == 1.0
    gust = evaluate_actor(ConstantActor(), "amia/Gust-v0", EvalConfig(episodes=4, max_steps=2, timing_calls=0),
                          progress=False)
    assert "failure_rate" not in gust


def test_a_tiny_run_trains_on_three_channel_chaser_frames(tmp_path):
    from amia.models.encoder import EncoderConfig
    from amia.models.jepa import JEPAConfig
    from amia.models.predictor import PredictorConfig
    from amia.training.world_model import TrainConfig, train

    cfg = TrainConfig(steps=2, batch_size=8, window=4, val_every=0, log_every=2, checkpoint_every=2, diag_windows=16,
                      threads=1, warmup=2, collect=CollectConfig(episodes=8, steps=10, batch=8),
                      jepa=JEPAConfig(encoder=EncoderConfig(dim=8, channels=(4, 8), downsample=4,
                                                            streams=((0, 1), (2,))),
                                      predictor=PredictorConfig(hidden=16)))
    assert train("amia/Chaser-v0", tmp_path / "run", cfg, progress=False)["env_id"] == "amia/Chaser-v0"
    from amia.infra.run_dir import load_model
    from amia.models.encoder import StreamEncoder

    model, _ = load_model(tmp_path / "run")  # the chaser's own stream survives the checkpoint round trip
    assert isinstance(model.encoder, StreamEncoder) and [len(e.cfg.channels) for e in model.encoder.streams] == [2, 2]
