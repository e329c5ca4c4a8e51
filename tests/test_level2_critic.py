"""The level-2 critic: its loss, its hindsight batches, its TD targets against shortest paths on a hand-built
graph, the maze's true shortest paths it is checked against, its cost term, its place in hierarchical Mode-2,
and its training files on a tiny two-level run."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from test_hierarchical import TOY, toy_actor
from test_hjepa import data_file, level1_run, level2_run  # noqa: F401  (module fixtures)
from torch import nn

from amia.cost.terms import GoalCritic, horizon_weights
from amia.envs.maze import MazeSpec, door_centres, geodesic_distance
from amia.infra.checkpoint import CheckpointError, read_checkpoint
from amia.infra.run_dir import CRITIC2 as CRITIC2_FILE
from amia.infra.run_dir import CRITIC2_SUMMARY, RunError, load_level2_critic
from amia.models.critic import Critic, LevelOneView
from amia.planning.compute import hierarchical_calls_per_step
from amia.planning.planners import PlannerConfig
from amia.training.critics import (
    HindsightSampler,
    Level2CriticConfig,
    expectile_loss,
    fit_hindsight_critic,
    train_level2_critic,
)

pytestmark = pytest.mark.usefixtures("restore_threads")


def test_expectile_loss_on_hand_computed_values():
    pred, target = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 3.0])
    # u = target - pred = (-1, 2): weight 0.9 below the prediction, 0.1 above -> (0.9 * 1 + 0.1 * 4) / 2
    assert expectile_loss(pred, target, 0.9).item() == pytest.approx(0.65)
    assert expectile_loss(pred, target, 0.5).item() == pytest.approx((0.5 * 1 + 0.5 * 4) / 2)


def test_hindsight_goals_stay_in_their_episode_and_next_is_one_stride_later():
    offsets, k = np.array([0, 10, 25, 28]), 4  # the last episode (3 frames) is shorter than the stride
    cfg = Level2CriticConfig(goal_self=0.2, goal_future=0.5)
    sampler = HindsightSampler(offsets, np.arange(3), k, cfg)
    b = sampler.sample(np.random.default_rng(0), 20000)
    episode = np.searchsorted(offsets, b["source"], side="right") - 1
    assert set(np.unique(episode)) == {0, 1}
    assert np.array_equal(b["next"], b["source"] + k)
    assert (np.searchsorted(offsets, b["next"], side="right") - 1 == episode).all()
    np.testing.assert_array_equal(b["reached"], b["goal"] == b["source"])
    own = (b["goal"] >= b["source"]) & (b["goal"] < offsets[episode + 1])
    future = own & ~b["reached"] & ((b["goal"] - b["source"]) % k == 0)
    assert b["reached"].mean() == pytest.approx(0.2, abs=0.02)
    assert future.mean() >= 0.5 - 0.02  # the future goals (plus random frames that happen to qualify)
    assert b["goal"].min() >= 0 and b["goal"].max() < offsets[-1]
    with pytest.raises(ValueError, match="longer than the critic.s stride"):
        HindsightSampler(offsets, np.array([2]), k, cfg)


def fit_on_graph(expectile: float, steps: int = 1500, seed: int = 0) -> np.ndarray:
    """The critic's value of every node of a 6-node line toward node 5, from episodes that pause and that never
    span the line: 0..3 and 3..5 only, so reaching 5 from 0 needs two episodes stitched."""
    episodes = [[0, 0, 1, 1, 2, 2, 3, 3], [3, 3, 4, 4, 5, 5], [0, 1, 1, 2, 3], [3, 4, 5, 5]]
    nodes = np.concatenate(episodes)
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in episodes])])
    cfg = Level2CriticConfig(hidden=32, layers=2, gamma=0.9, expectile=expectile, batch_size=128, lr=3e-3,
                             target_tau=0.05)
    torch.manual_seed(seed)
    states = torch.eye(6)[torch.from_numpy(nodes)]
    critic = Critic(6, 6, cfg.hidden, cfg.layers)
    fit_hindsight_critic(critic, states, offsets, 1, cfg, steps, cfg.batch_size, cfg.lr, seed)
    with torch.no_grad():
        return critic(torch.eye(6), torch.eye(6)[5].expand(6, 6)).numpy()


def test_td_learns_the_shortest_stitched_path_and_the_expectile_is_what_picks_it():
    torch.set_num_threads(1)
    shortest = np.array([(1 - 0.9 ** n) / (1 - 0.9) for n in range(5, -1, -1)])  # discounted steps to node 5
    best = fit_on_graph(0.9)
    np.testing.assert_allclose(best, shortest, atol=0.5)
    assert (np.diff(best) < 0).all()  # nearer nodes are cheaper, all along the stitched line
    average = fit_on_graph(0.5)  # the data's average path, pauses included, is longer
    assert average[0] > best[0] + 0.5


def test_geodesic_distance_follows_the_doors():
    spec = MazeSpec()
    doors = door_centres(spec)
    assert set(doors) == {tuple(sorted(d)) for d in spec.open_doors}
    a = np.array([[16.0, 16.0]])
    np.testing.assert_allclose(geodesic_distance(spec, a, np.array([[20.0, 19.0]])), [5.0])  # same room
    to_room1 = np.linalg.norm(a[0] - doors[(0, 1)]) + np.linalg.norm(doors[(0, 1)] - [48.0, 16.0])
    np.testing.assert_allclose(geodesic_distance(spec, a, np.array([[48.0, 16.0]])), [to_room1])
    # room 0 to room 3 below it: the door 0-3 is closed, so the way is 0-1-2-5-4-3
    way = [a[0], doors[(0, 1)], doors[(1, 2)], doors[(2, 5)], doors[(4, 5)], doors[(3, 4)], np.array([16.0, 48.0])]
    expected = sum(np.linalg.norm(p - q) for p, q in zip(way[:-1], way[1:]))
    np.testing.assert_allclose(geodesic_distance(spec, a, np.array([[16.0, 48.0]])), [expected])
    np.testing.assert_allclose(geodesic_distance(spec, np.array([[16.0, 48.0]]), a), [expected])
    closed = dataclasses.replace(spec, open_doors=((0, 1),))
    assert np.isinf(geodesic_distance(closed, a, np.array([[80.0, 80.0]]))).all()


class PullToward(nn.Module):
    """A hand-made critic: squared distance of the state to a fixed point, whatever the goal."""

    def __init__(self, point):
        super().__init__()
        self.register_buffer("point", torch.tensor(point))

    def forward(self, s: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return (s - self.point).pow(2).sum(-1) + 0 * goal.sum(-1)


def test_goal_critic_term_is_the_weighted_mean_of_the_critic_over_the_horizon():
    critic = PullToward([0.0, 0.0])
    states = torch.tensor([[[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]] * 2])  # (B=1, K=2, T=3, D=2)
    term = GoalCritic(critic, torch.zeros(1, 2), final_weight=2.0)
    energy = term(states)
    assert energy.shape == (1, 2)
    w = horizon_weights(3, 2.0)
    assert energy[0, 0].item() == pytest.approx(float((torch.tensor([1.0, 4.0, 9.0]) * w).sum()))


def test_the_critic_steers_level2s_subgoal_and_weight_zero_turns_it_off():
    goal, start = (30.0, 0.0), (0.0, 0.0)
    plain = toy_actor()
    plain.reset(np.array([goal], dtype=np.float32), seed=0)
    ep = plain.ep
    s = torch.tensor([start])
    plain.plan_level2(ep, s)
    assert ep.subgoal[0, 0] > 3.0 and abs(ep.subgoal[0, 1]) < 0.5  # straight at the goal

    cfg = dataclasses.replace(TOY, critic_weight=100.0)
    steered = dataclasses.replace(toy_actor(cfg), critic2=PullToward([0.0, 20.0]))
    steered.reset(np.array([goal], dtype=np.float32), seed=0)
    ep = steered.ep
    steered.plan_level2(ep, s)
    assert ep.subgoal[0, 1] > 3.0 and abs(ep.subgoal[0, 0]) < 1.0  # the critic's way (up) first

    off = dataclasses.replace(toy_actor(dataclasses.replace(TOY, critic_weight=0.0)), critic2=PullToward([0.0, 20.0]))
    off.reset(np.array([goal], dtype=np.float32), seed=0)
    ep = off.ep
    off.plan_level2(ep, s)
    assert ep.subgoal[0, 0] > 3.0


def test_compute_counts_level2_twice_with_a_critic():
    gd = PlannerConfig(horizon=10, warm_iterations=4, restarts=3)
    plain = hierarchical_calls_per_step("gd", gd, 2, "gd", gd, 8)
    assert hierarchical_calls_per_step("gd", gd, 2, "gd", gd, 8, level2_factor=2) == plain + 150 / 8


TINY = Level2CriticConfig(hidden=8, layers=1, steps=6, batch_size=16, log_every=2, checkpoint_every=2, threads=1)


@pytest.fixture(scope="module")
def critic_run(tmp_path_factory, level2_run):
    run = tmp_path_factory.mktemp("c2") / "run"
    shutil.copytree(level2_run[0], run)
    return run, train_level2_critic(run, TINY, progress=False)


def test_train_level2_critic_writes_weights_and_summary_and_loads_back(critic_run):
    run, summary = critic_run
    assert summary["steps"] == 6 and np.isfinite(summary["final_loss"])
    assert json.loads((run / CRITIC2_SUMMARY).read_text())["config"]["steps"] == 6
    assert summary["check"] == {}  # the true shortest paths are known in the maze only
    critic = load_level2_critic(run)
    assert not any(p.requires_grad for p in critic.parameters())
    s = torch.randn(5, critic.state_dim)
    assert critic(s, s[:1]).shape == (5,) and (critic(s, s[:1]) >= 0).all()
    assert train_level2_critic(run, TINY, progress=False) == summary  # finished: read back, no more training


def test_interrupted_and_resumed_critic_equals_uninterrupted(critic_run, level2_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(level2_run[0], run)
    assert train_level2_critic(run, TINY, progress=False, stop_after=3) == {"stopped_at": 3}
    with pytest.raises(CheckpointError, match="step 3 of 6"):
        load_level2_critic(run)
    train_level2_critic(run, TINY, progress=False)
    resumed, _, _ = read_checkpoint(run / CRITIC2_FILE)
    whole, _, _ = read_checkpoint(critic_run[0] / CRITIC2_FILE)
    weights = [k for k in whole if k.startswith("model/")]
    assert any(k.startswith("model/target.") for k in weights)  # the target network is saved too
    assert not [k for k in weights if not torch.equal(resumed[k], whole[k])]


def test_level2_critic_settings_and_missing_files_are_clear(critic_run, tmp_path):
    from amia.infra.run_dir import load_level2

    run, _ = critic_run
    with pytest.raises(RunError, match="other settings"):
        train_level2_critic(run, dataclasses.replace(TINY, gamma=0.5), progress=False)
    assert load_level2_critic(tmp_path) is None
    level2, _ = load_level2(run)
    assert load_level2_critic(run, level2=level2) is not None
    with torch.no_grad():
        next(level2.parameters()).add_(1.0)
    with pytest.raises(CheckpointError, match="other level-2 weights"):
        load_level2_critic(run, level2=level2)
    with pytest.raises(ValueError, match="gamma"):
        Level2CriticConfig(gamma=1.0)
    with pytest.raises(ValueError, match="goal_self"):
        Level2CriticConfig(goal_self=0.6, goal_future=0.6)


def test_level_one_view_reads_the_critic_through_enc2(critic_run):
    from amia.infra.run_dir import load_level2

    run, _ = critic_run
    level2, _ = load_level2(run)
    critic = load_level2_critic(run)
    view = LevelOneView(critic, level2)
    s1, g1 = torch.randn(3, level2.level1_dim), torch.randn(3, level2.level1_dim)
    torch.testing.assert_close(view(s1, g1), critic(level2.encode_state(s1), level2.encode_state(g1)))
    assert (run / CRITIC2_FILE).exists()
