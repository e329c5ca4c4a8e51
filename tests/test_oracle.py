"""The oracle (amia.planning.oracle): the true dynamics in torch, and Mode-2 planned on them."""

import json

import numpy as np
import pytest
import torch

from amia.agent.episodes import run_episodes
from amia.cli import main
from amia.envs import make_world
from amia.planning.oracle import OracleActor, Simulator, stop_at_walls
from amia.planning.planners import PlannerConfig


@pytest.mark.parametrize("env", ["amia/TwoRooms-v0", "amia/Wall-v0", "amia/Maze-v0", "amia/Chaser-v0"])
def test_the_simulator_steps_exactly_like_the_world(env):
    """30 steps of random actions (some beyond the bound, many into walls) from 64 random starts: the torch roll-out
    lands where the numpy world does, the pursuing chaser and captures included."""
    world = make_world(env, 64, seed=3, evaluation=True)
    world.reset(seed=3)
    sim = Simulator(world)
    actions = np.random.default_rng(0).uniform(-4, 4, (64, 30, 2)).astype(np.float32)
    predicted = sim.rollout(sim.state(world), torch.from_numpy(actions)).numpy()
    true = []
    for t in range(30):
        world.step(actions[:, t])
        true.append(world.state[:, :sim.state_dim])
    np.testing.assert_allclose(predicted, np.stack(true, 1), atol=1e-4)
    if env == "amia/Chaser-v0":
        assert world.caught.any()  # the comparison covered captures


def test_stopping_at_a_wall_against_hand_computed_values_and_gradients():
    lo, hi = torch.tensor([[[10.0, -100.0]]]).repeat(3, 1, 1), torch.tensor([[[12.0, 100.0]]]).repeat(3, 1, 1)
    pos = torch.tensor([[5.0, 0.0], [5.0, 0.0], [5.0, 0.0]], requires_grad=True)
    move = torch.tensor([[4.0, 0.0], [10.0, 2.0], [0.0, 0.0]], requires_grad=True)
    new = stop_at_walls(pos, move, lo, hi)
    # free move; half of (10, 2) reaches the wall at x = 10 (less a hair); no move
    torch.testing.assert_close(new.detach(), torch.tensor([[9.0, 0.0], [10.0, 1.0], [5.0, 0.0]]), atol=1e-5, rtol=0)
    new.sum().backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(move.grad).all()


@pytest.mark.parametrize("planner", ["gd", "mppi"])
def test_the_oracle_reaches_goals_in_the_open(planner):
    """Starts and goals in the same room of TwoRooms: on the true dynamics the goal distance alone leads there."""
    world = make_world("amia/TwoRooms-v0", 4)
    starts = np.array([[10, 10], [50, 50], [10, 50], [50, 10]], dtype=np.float32)
    goals = np.array([[25, 30], [40, 20], [20, 20], [55, 40]], dtype=np.float32)
    world.set_state(np.concatenate([starts, np.full((4, 2), 32.0, dtype=np.float32)], 1))
    actor = OracleActor(planner=planner, planning=PlannerConfig(horizon=16, restarts=4, samples=64, populations=2))
    out = run_episodes(actor, world, world.render(), 30, true_world=world, goal_states=goals)
    assert np.linalg.norm(out["positions"][:, -1] - goals, axis=1).max() < 1.5
    with pytest.raises(ValueError, match="true_world= and goal_states="):
        actor.reset(world.render())


def test_oracle_errors_are_named(tmp_path, capsys):
    assert main(["eval", "--episodes", "2"]) == 2
    assert "needs --run RUN (or --oracle with --env ID)" in capsys.readouterr().err
    assert main(["eval", "--oracle", "--env", "amia/Gust-v0", "--episodes", "2"]) == 2
    assert "no oracle for 'amia/Gust-v0'" in capsys.readouterr().err
    assert main(["eval", "--oracle", "--env", "amia/TwoRooms-v0", "--mode", "1"]) == 2
    assert "Mode-2 without policy" in capsys.readouterr().err
    out = tmp_path / "o.json"
    assert main(["eval", "--oracle", "--env", "amia/Chaser-v0", "--task", "evade", "--episodes", "2", "--quiet",
                 "--json", str(out), "max_steps=5", "planning.horizon=4", "planning.restarts=2"]) == 0
    r = json.loads(out.read_text())
    assert r["run"] == "oracle" and r["env"] == "amia/Chaser-v0" and 0 <= r["success_rate"] <= 1


def test_the_true_level2_holds_an_abstract_action_for_a_stride():
    """A level-2 step on the true dynamics is the level-1 action ``a2 * bound`` held for ``stride`` steps: in the
    open it moves 8 x 2.45 px; into the middle wall of TwoRooms it stops at the wall, as the world does."""
    from amia.agent.hierarchical_oracle import TrueLevel2

    world = make_world("amia/TwoRooms-v0", 2)
    world.set_state(np.array([[10.0, 10.0, 32, 32], [24.0, 10.0, 32, 32]], dtype=np.float32))
    sim = Simulator(world)
    level2 = TrueLevel2(sim, stride=8, scale=10.0, bound=2.45)
    s2 = level2.encode(sim.state(world)[:, None])
    a2 = torch.tensor([[[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    states2 = level2.rollout(s2, a2) * 10
    torch.testing.assert_close(states2[0], torch.tensor([[10.0, 29.6], [10.0, 49.2]]), atol=1e-4, rtol=0)
    for _ in range(16):
        world.step(np.array([[0.0, 2.45], [2.45, 0.0]], dtype=np.float32))
    torch.testing.assert_close(states2[1, -1], torch.as_tensor(world.state[1, :2]), atol=1e-4, rtol=0)
    assert states2[1, -1, 0] < 31  # stopped at the wall's face, not through it


def test_the_hierarchical_oracle_reaches_goals_and_names_its_limits(capsys):
    """Hierarchical Mode-2 on the true dynamics reaches goals in the open; a world with a chaser is refused."""
    from amia.agent.hierarchical import HierarchyConfig
    from amia.agent.hierarchical_oracle import HierarchicalOracle

    world = make_world("amia/TwoRooms-v0", 4)
    starts = np.array([[10, 10], [50, 50], [10, 50], [50, 10]], dtype=np.float32)
    goals = np.array([[25, 30], [40, 20], [20, 20], [55, 40]], dtype=np.float32)
    world.set_state(np.concatenate([starts, np.full((4, 2), 32.0, dtype=np.float32)], 1))
    cfg = HierarchyConfig(level1=PlannerConfig(horizon=16, restarts=4), level2=PlannerConfig(horizon=4, restarts=4),
                          stay=False)  # staying put may stop it anywhere within the success radius
    actor = HierarchicalOracle.for_world("gd", cfg, 2.45)
    out = run_episodes(actor, world, world.render(), 40, true_world=world, goal_states=goals)
    assert np.linalg.norm(out["positions"][:, -1] - goals, axis=1).max() < 1.5
    assert main(["eval", "--oracle", "--hierarchical", "--env", "amia/Chaser-v0", "--episodes", "2"]) == 2
    assert "lone agent" in capsys.readouterr().err


def test_staying_put_is_a_candidate_where_the_goal_switch_is_on():
    """``HierarchyConfig.stay`` on the true dynamics: an episode at its goal with the switch on keeps still rather
    than walk away; one far from its goal keeps its plan towards it; one at its goal with the switch off keeps
    its plan (it is following a subgoal)."""
    from amia.agent.hierarchical import HierarchyConfig
    from amia.agent.hierarchical_oracle import HierarchicalOracle

    world = make_world("amia/TwoRooms-v0", 3)
    pos = np.array([[15, 15], [10, 40], [15, 15]], dtype=np.float32)
    world.set_state(np.concatenate([pos, np.full((3, 2), 32.0, dtype=np.float32)], 1))
    goals = np.array([[15, 15], [25, 40], [15, 15]], dtype=np.float32)
    cfg = HierarchyConfig(level1=PlannerConfig(horizon=16), level2=PlannerConfig(horizon=2), stay=True)
    actor = HierarchicalOracle.for_world("gd", cfg, 2.45)
    actor.reset(world.render(), true_world=world, goal_states=goals)
    ep = actor.ep
    ep.near, ep.subgoal = torch.tensor([True, True, False]), actor.encode2(torch.from_numpy(goals))
    s1 = actor.perceive(world.render())
    plan = torch.zeros(3, 16, 2)
    plan[:, :4, 0] = 2.45  # four steps right, then still
    kept = actor.stay_where_better(ep, s1, plan, actor.level1_cost(ep, 16))
    assert torch.equal(kept[0], torch.zeros(16, 2))
    assert torch.equal(kept[1:], plan[1:])
