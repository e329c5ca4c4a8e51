"""Hierarchical Mode-2: the subgoal hand-off between the levels on hand-built toy models, the subgoal cost, the goal
switch, the compute count, the episode budget, and the protocol and command line on a tiny two-level run."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_hjepa import tiny_level1, tiny_level2
from torch import nn

from amia.agent.episodes import run_episodes
from amia.agent.hierarchical import HierarchicalActor, HierarchyConfig
from amia.agent.load import AgentError, build_actor
from amia.cli import main as cli_main
from amia.cost.terms import SubgoalDistance, subgoal_weights
from amia.data.collect import CollectConfig, collect
from amia.eval.protocol import EvalConfig, evaluate, evaluate_actor
from amia.infra.run_dir import LEVEL2, load_level2, load_model
from amia.planning.compute import flat_calls_per_step, hierarchical_calls_per_step, match_compute, plan_calls
from amia.planning.planners import PlannerConfig
from amia.training.level2 import train_level2
from amia.training.world_model import train

ENV = "amia/TwoRooms-v0"
pytestmark = pytest.mark.usefixtures("restore_threads")

# ------------------------------------------------------------------ toy levels: a 2-D integrator, identity Enc2


class ToyPredictor(nn.Module):
    """Level 1: ``s[t+1] = s[t] + a[t]`` in the plane."""

    def rollout(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return s0[:, None] + actions.cumsum(1)


class ToyLevel1(nn.Module):
    action_dim = 2

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)  # gives the actor a device
        self.predictor = ToyPredictor()

    def encoder(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()


class ToyLevel2(nn.Module):
    """Level 2: identity ``Enc2``; one step moves ``k * bound * a2``, the sum of k level-1 actions ``bound * a2``."""

    action_dim = 2

    def __init__(self, k: int, bound: float):
        super().__init__()
        self.cfg, self.bound = SimpleNamespace(stride=k, span=1), bound
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)

    def encode(self, blocks: torch.Tensor) -> torch.Tensor:
        return blocks.mean(-2)

    def rollout(self, s0: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
        return s0[:, None] + (self.cfg.stride * self.bound * a2).cumsum(1)


class ToyWorld:
    """The integrator as a batched world: observations are the positions themselves."""

    def __init__(self, start: np.ndarray, bound: float):
        self.state, self.bound = start.astype(np.float64).copy(), bound

    def render(self) -> np.ndarray:
        return self.state.astype(np.float32)

    def step(self, a: np.ndarray):
        self.state = self.state + np.clip(a, -self.bound, self.bound)
        return self.render(), {"state": self.state.copy()}


K, BOUND = 4, 1.0
TOY = HierarchyConfig(level1=PlannerConfig(horizon=8, iterations=40, warm_iterations=15, restarts=4, lr=0.5),
                      level2=PlannerConfig(horizon=4, iterations=40, warm_iterations=15, restarts=4, lr=0.3),
                      replan_every=2, subgoal=1, switch_distance=0.5)


def toy_actor(cfg: HierarchyConfig = TOY) -> HierarchicalActor:
    return HierarchicalActor(ToyLevel1(), ToyLevel2(K, BOUND), "gd", cfg, bound=BOUND)


def start_level2(actor: HierarchicalActor, start, goal):
    actor.reset(np.array([goal], dtype=np.float32), seed=0)
    ep = actor.ep
    s = torch.tensor([start], dtype=torch.float32)
    actor.plan_level2(ep, actor.level2.encode(s[:, None]))
    return ep, s


def test_subgoal_is_level2s_first_planned_state_and_level1_reaches_it():
    actor = toy_actor()
    ep, s = start_level2(actor, (0.0, 0.0), (30.0, 10.0))
    states2 = actor.level2.rollout(s, ep.plan2)
    torch.testing.assert_close(ep.subgoal, states2[:, 0])  # the first planned state, k level-1 steps ahead
    # the goal is 30 px right, 10 px down: level 2's best first step moves k * bound = 4 along both axes
    torch.testing.assert_close(ep.subgoal, torch.tensor([[4.0, 4.0]]), atol=0.3, rtol=0)
    assert not ep.near.item()  # far beyond the level-1 horizon: level 1 gets the subgoal, not the goal
    actor.plan_level1(ep, s, at=K)
    path = actor.model.predictor.rollout(s, ep.plan1)
    assert (path[0, K - 1] - ep.subgoal[0]).norm() < 0.3  # level 1 is at the subgoal after k steps ...
    assert (path[0, K:] - ep.subgoal[0]).norm(dim=-1).max() < 0.5  # ... and stays there to the end of its horizon


def test_goal_within_reach_is_handed_to_level1_itself():
    actor = toy_actor()
    goal = (6.0, -3.0)  # beyond the subgoal (k = 4 steps) but inside level 1's 8-step horizon
    ep, s = start_level2(actor, (0.0, 0.0), goal)
    assert ep.near.item()
    actor.plan_level1(ep, s, at=K)
    path = actor.model.predictor.rollout(s, ep.plan1)
    assert (path[0, -1] - torch.tensor(goal)).norm() < 0.3  # level 1 plans to the goal, not to the subgoal
    far = toy_actor(dataclasses.replace(TOY, switch_distance=0.0))  # the rule's threshold is what decides
    ep_far, _ = start_level2(far, (0.0, 0.0), goal)
    assert not ep_far.near.item()


def test_the_loop_reaches_a_goal_far_beyond_the_level1_horizon_and_records_the_hand_offs():
    actor = toy_actor()
    start, goal = np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([[30.0, 10.0], [-20.0, 25.0]])
    out = run_episodes(actor, ToyWorld(start, BOUND), goal.astype(np.float32), steps=40, seed=0, record=1)
    final = np.linalg.norm(out["positions"][:, -1] - goal, axis=-1)
    assert out["positions"].shape == (2, 41, 2) and (final < 1.0).all(), final
    trace = out["trace"]
    assert len(out["frames"]) == 40 and len(trace["plans"]) == 40 // TOY.replan_every
    assert len(trace["subgoals"]) == len(trace["switched"]) == 40 // TOY.replan_every
    assert len(trace["level2_plans"]) == 40 // K and trace["plans"][0].shape == (1, TOY.level1.horizon, 2)
    assert not trace["switched"][0][0] and trace["switched"][-1][0]  # subgoals first, the goal itself at the end
    again = run_episodes(actor, ToyWorld(start, BOUND), goal.astype(np.float32), steps=40, seed=0)
    np.testing.assert_array_equal(out["positions"], again["positions"])


def test_actor_settings_are_checked():
    with pytest.raises(ValueError, match="must reach the subgoal"):
        toy_actor(dataclasses.replace(TOY, subgoal=3))  # 3 * 4 level-1 steps > horizon 8
    with pytest.raises(ValueError, match="multiple of hierarchy.replan_every"):
        toy_actor(dataclasses.replace(TOY, replan_every=3))
    with pytest.raises(ValueError, match="unknown planner"):
        HierarchicalActor(ToyLevel1(), ToyLevel2(K, BOUND), "astar", TOY)
    with pytest.raises(ValueError, match="planner2"):
        HierarchyConfig(planner2="astar")


# ------------------------------------------------------------------------------------------ the subgoal cost


def test_subgoal_distance_on_hand_computed_inputs():
    enc = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        enc.weight.copy_(2 * torch.eye(2))
    enc.requires_grad_(False)
    states = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]])  # (B=1, T=3, D1=2); Enc2 doubles them
    cost = SubgoalDistance(enc, torch.tensor([[2.0, 2.0]]), at=2, final_weight=3.0)
    # per step, mean over dims of (2 s - g)^2: (4 + 4) / 2 = 4, (0 + 4) / 2 = 2, 0; weights (1, 3, 3) / 7
    assert cost(states).item() == pytest.approx((4 * 1 + 2 * 3 + 0 * 3) / 7)
    torch.testing.assert_close(subgoal_weights(3, 2, 3.0), torch.tensor([1.0, 3.0, 3.0]) / 7)
    # candidates: (B, N, T, D) -> (B, N)
    assert cost(states[:, None].expand(1, 5, 3, 2)).shape == (1, 5)


def test_subgoal_distance_has_no_trainable_parameters_and_differentiates_to_the_states():
    enc = nn.Linear(2, 3).requires_grad_(False)
    cost = SubgoalDistance(enc, torch.zeros(1, 3), at=1)
    assert not hasattr(cost, "parameters") and not [p for p in enc.parameters() if p.requires_grad]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cost.at = 2
    states = torch.randn(1, 4, 2, requires_grad=True)
    cost(states).backward()
    assert states.grad is not None and states.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())


# ------------------------------------------------------------------------------------------ compute, budget


def test_compute_counts_and_matching():
    gd = PlannerConfig(horizon=10, warm_iterations=4, restarts=3)
    assert plan_calls("gd", gd) == 5 * 3 * 10
    cem = PlannerConfig(horizon=10, warm_iterations=4, samples=64, populations=4)
    assert plan_calls("cem", cem) == 4 * 64 * 10
    assert plan_calls("hybrid", cem) == 4 * 64 * 10 + (cem.refine + 1) * 10
    h = hierarchical_calls_per_step("gd", gd, 2, "gd", gd, 8)
    assert h == 2 * 150 / 2 + 150 / 8
    flat = match_compute("gd", PlannerConfig(horizon=32, warm_iterations=1, iterations=3, restarts=2), 4, h)
    assert flat_calls_per_step("gd", flat, 4) >= h
    assert flat_calls_per_step("gd", dataclasses.replace(flat, warm_iterations=flat.warm_iterations - 1), 4) < h
    assert flat.iterations >= 3 and flat.horizon == 32


def test_eval_budget_defaults_to_the_worlds():
    assert EvalConfig().max_steps is None
    assert EvalConfig().steps("amia/Maze-v0") == 400
    assert EvalConfig().steps("amia/TwoRooms-v0") == 200
    assert EvalConfig(max_steps=7).steps("amia/Maze-v0") == 7


# ------------------------------------------------------------------------------ the protocol on a tiny run

SMALL = ["hierarchy.level1.horizon=4", "hierarchy.subgoal=1", "hierarchy.level1.iterations=2",
         "hierarchy.level1.warm_iterations=1",
         "hierarchy.level1.restarts=2", "hierarchy.level2.horizon=2", "hierarchy.level2.iterations=2",
         "hierarchy.level2.warm_iterations=1", "hierarchy.level2.restarts=2", "hierarchy.replan_every=2",
         "max_steps=8", "timing_calls=1"]


@pytest.fixture(scope="module")
def two_level_run(tmp_path_factory) -> Path:
    """A tiny finished level 1 and level 2 (stride 4) on TwoRooms (read-only)."""
    root = tmp_path_factory.mktemp("hier")
    data = root / "tworooms.h5"
    collect(ENV, data, CollectConfig(episodes=10, steps=30, batch=10), progress=False)
    run = root / "run"
    train(ENV, run, tiny_level1(), data=str(data), progress=False)
    train_level2(run, tiny_level2(), progress=False)
    return run


def test_hierarchical_protocol_reports_the_flat_fields(two_level_run):
    from amia.infra.config import apply_overrides

    model, _ = load_model(two_level_run)
    level2, _ = load_level2(two_level_run, level1=model)
    cfg = apply_overrides(EvalConfig(episodes=2, hierarchical=True), SMALL)
    r = evaluate(two_level_run, cfg, progress=False)
    assert r == {**evaluate_actor(build_actor(model, cfg, 2.45, parts=None, level2=level2), ENV, cfg, progress=False),
                 "run": str(two_level_run), **{k: r[k] for k in ("ms_per_plan_median", "ms_per_level2_plan_median",
                                                                 "ms_per_action_mean")}}
    assert r["hierarchical"] is True and r["episodes"] == 2 and r["max_steps"] == 8 and r["stride"] == 4
    assert {"success_rate", "strict_success_rate", "mean_final_distance_px", "ms_per_plan_median",
            "ms_per_action_mean", "predictor_calls_per_step", "level2_horizon"} <= set(r)
    assert r["success_rate"] == np.mean(np.array(r["final_distance_px"]) < 4.5)
    assert r["ms_per_plan_median"] > 0 and r["ms_per_level2_plan_median"] > 0 and r["predictor_calls_per_step"] > 0
    assert r["config"]["hierarchy"]["level1"]["horizon"] == 4  # the whole resolved configuration
    json.dumps(r)
    with pytest.raises(AgentError, match="amia train --levels 2"):
        build_actor(model, cfg, 2.45)


def test_eval_hierarchical_cli_writes_json_and_a_gif_with_subgoals(two_level_run, tmp_path, capsys):
    import imageio.v2 as imageio

    out, gif = tmp_path / "h.json", tmp_path / "h.gif"
    args = ["eval", "--run", str(two_level_run), "--hierarchical", "--episodes", "2", "--quiet", "--json", str(out),
            "--gif", str(gif)]
    assert cli_main(args + SMALL) == 0
    assert "gd " in capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["hierarchical"] is True and r["planner"] == "gd" and "git_rev" in r and r["episodes"] == 2
    assert len(imageio.mimread(str(gif))) == 8


def test_eval_hierarchical_without_level2_names_the_command(two_level_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(two_level_run, run)
    (run / LEVEL2).unlink()
    assert cli_main(["eval", "--run", str(run), "--hierarchical", "--quiet"] + SMALL) == 2
    err = capsys.readouterr().err
    assert "amia train --levels 2" in err and "no level-2 model" in err
    assert cli_main(["eval", "--run", str(two_level_run), "--hierarchical", "--mode", "1"] + SMALL) == 2
    assert "hierarchical Mode-2 plans the reach task" in capsys.readouterr().err


def test_gif_draws_the_subgoal_as_an_orange_ring_and_skips_nan(tmp_path):
    import imageio.v2 as imageio

    from amia.eval.pictures import episode_gif

    frames = np.zeros((2, 1, 2, 16, 16), dtype=np.uint8)
    subgoals = [np.array([[8.0, 8.0]]), np.array([[np.nan, np.nan]])]
    episode_gif(tmp_path / "s.gif", frames, np.array([[2.0, 2.0]]), None, 1, scale=1, subgoals=subgoals)
    first, second = (np.asarray(f)[..., :3].astype(int) for f in imageio.mimread(str(tmp_path / "s.gif")))
    orange = lambda img: ((img[..., 0] > 200) & (img[..., 1] > 100) & (img[..., 1] < 180) & (img[..., 2] < 60)).sum()
    assert orange(first) == 16 and orange(second) == 0  # a 5x5 ring around (8, 8); none when switched
