"""Surprise (``amia.agent.surprise``): the test by hand, the exploration that follows it, and a stall behind a wall
that only the watch escapes."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_hierarchical import BOUND, TOY, ToyLevel1, ToyWorld, toy_actor
from torch import nn

from amia.agent.episodes import run_episodes
from amia.agent.flat import FlatActor
from amia.agent.surprise import Surprise, SurpriseConfig
from amia.cost.configurator import configure
from amia.planning.compute import flat_calls_per_step, hierarchical_calls_per_step
from amia.planning.planners import PlannerConfig


def integrator(s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return s0[:, None] + actions.cumsum(1)


def watch(seed: int = 0, **changes) -> Surprise:
    cfg = SurpriseConfig(enabled=True, every=2, steps=3, ratio=0.3, command=0.3, **changes)
    return Surprise(cfg, integrator, 1.0, torch.Generator().manual_seed(seed))


def test_surprise_by_hand():
    w = watch()
    w.start = torch.zeros(6, 2)
    w.executed = [torch.tensor([[1.0, 0.0]] * 5 + [[0.1, 0.0]]), torch.tensor([[1.0, 0.0]] * 5 + [[0.1, 0.0]])]
    # predicted: (2, 0) for the first five (squared motion per dimension: 2), (0.2, 0) for the last
    s = torch.tensor([[0.0, 0.0],  # blocked: surprised
                      [2.0, 0.0],  # moved as predicted
                      [1.5, 0.0],  # 1.125 of 2 > 0.3: not surprised
                      [0.7, 0.0],  # 0.245 of 2 < 0.3: surprised
                      [0.0, 0.0],  # blocked, but checked against a goal below
                      [0.0, 0.0]])  # asked for 0.1 of the largest move: cannot be surprised
    assert w.surprised(s).tolist() == [True, False, False, True, True, False]
    # goals nearer than the predicted move (squared per dimension: 1.125 and 1 < 2) make those episodes settle
    goal = torch.tensor([[0.0, 1.5], [9.0, 9.0], [9.0, 9.0], [9.0, 9.0], [1.0, 1.0], [9.0, 9.0]])
    assert w.surprised(s, goal).tolist() == [False, False, False, True, False, False]
    has_goal = torch.tensor([False, True, True, True, True, True])
    assert w.surprised(s, goal, has_goal).tolist() == [True, False, False, True, False, False]


def test_a_pinned_episode_explores_at_full_speed_in_a_new_direction_after_every_window():
    w, planned = watch(), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    free, actions = torch.zeros(2), []
    for t in range(8):
        s = torch.stack([torch.zeros(2), free])  # episode 0 is pinned; episode 1 moves as the integrator says
        a = w.step(s, planned, t)
        actions.append(a)
        free = free + a[1]
    a = torch.stack(actions)  # (8, 2, 2)
    torch.testing.assert_close(a[:, 1], planned[1].expand(8, 2))  # the free episode always follows its plan
    torch.testing.assert_close(a[:2, 0], planned[0].expand(2, 2))  # the first window: the plan
    torch.testing.assert_close(a[2:, 0].norm(dim=-1), torch.ones(6))  # then exploration at full speed ...
    torch.testing.assert_close(a[2, 0], a[3, 0])  # ... one direction per surprise ...
    assert not torch.allclose(a[3, 0], a[4, 0])  # ... a new one when the next window surprises again
    assert w.surprises == 3 and w.explored_steps == 6  # windows ending at t = 2, 4, 6
    again, fresh = watch(), []
    for t in range(8):
        fresh.append(again.step(torch.stack([torch.zeros(2), torch.zeros(2) + t]), planned, t))
    torch.testing.assert_close(torch.stack(fresh)[:, 0], a[:, 0])  # seeded: the same directions


def test_back_off_turns_45_degrees_away_from_the_failed_move_always_to_the_episodes_side():
    """Eight episodes pushed right (four) or down (four) into walls. Each backs away from its failed move at 45
    degrees to one side, at full speed; the side, drawn once per episode, stays the same on every later surprise,
    whatever the failed move."""
    w, h = watch(seed=0, explore="back_off"), 0.5 ** 0.5
    right, down = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    first = torch.stack([right] * 4 + [down] * 4)
    w.executed = [first, first]
    d1 = w.exploration(first, torch.ones(8, dtype=torch.bool))
    side = w.side.clone()
    assert set(side.tolist()) == {1.0, -1.0}  # both sides occur (seed 0)
    # back from right is (-1, 0): turned by +45 degrees (side +1) (-h, -h), by -45 degrees (-h, +h);
    # back from down is (0, -1): (+h, -h) and (-h, -h)
    from_right = torch.stack([torch.full_like(side, -h), -h * side], dim=1)
    from_down = torch.stack([h * side, torch.full_like(side, -h)], dim=1)
    is_right = torch.arange(8)[:, None] < 4
    torch.testing.assert_close(d1, torch.where(is_right, from_right, from_down))
    w.executed = [first.flip(0), first.flip(0)]  # the next surprise: the other pushes
    d2 = w.exploration(first, torch.ones(8, dtype=torch.bool))
    assert torch.equal(w.side, side)
    torch.testing.assert_close(d2, torch.where(is_right, from_down, from_right))
    # in the loop: a pinned episode's first exploratory action is the back-off
    w, pinned = watch(seed=0, explore="back_off"), torch.zeros(8, 2)
    for t in range(3):
        a = w.step(pinned, first, t)
    torch.testing.assert_close(a, d1)
    with pytest.raises(ValueError, match="explore='spiral': expected one of random, back_off"):
        SurpriseConfig(explore="spiral")
    w.executed = [torch.ones(1, 3)]
    with pytest.raises(ValueError, match="needs 2-D actions"):
        w.exploration(torch.ones(1, 3), torch.ones(1, dtype=torch.bool))


def test_no_surprise_and_disabled_leave_the_plan_untouched():
    w, planned, s = watch(), torch.tensor([[1.0, -1.0]]), torch.zeros(1, 2)
    for t in range(10):  # moves exactly as predicted
        assert torch.equal(w.step(s, planned, t), planned)
        s = s + planned
    assert w.surprises == 0

    def never(*_):
        raise AssertionError("a disabled watch must not run the predictor")

    off = Surprise(SurpriseConfig(), never, 1.0, torch.Generator())
    for t in range(10):
        assert off.step(torch.zeros(1, 2), planned, t) is planned


def test_settings_are_checked():
    with pytest.raises(ValueError, match=r"ratio=0.0: expected a number in \(0, 1\]"):
        SurpriseConfig(ratio=0.0)
    with pytest.raises(ValueError, match="every=-1: expected an integer >= 0"):
        SurpriseConfig(every=-1)


class WallWorld(ToyWorld):
    """The integrator with a wall segment at x = 10 for |y| <= 2: a move that would cross it stops dead."""

    def step(self, a: np.ndarray):
        new = self.state + np.clip(a, -self.bound, self.bound)
        crosses = (self.state[:, 0] <= 10) & (new[:, 0] > 10)
        y = self.state[:, 1] + (new[:, 1] - self.state[:, 1]) * np.where(crosses, (10 - self.state[:, 0]) /
                                                                         np.maximum(new[:, 0] - self.state[:, 0],
                                                                                    1e-9), 1)
        blocked = crosses & (np.abs(y) <= 2)
        self.state = np.where(blocked[:, None], self.state, new)
        return self.render(), {"state": self.state.copy()}


def test_hierarchical_actor_escapes_a_wall_its_model_does_not_know_only_with_the_watch():
    start, goal = np.array([[0.0, 0.0]]), np.array([[20.0, 0.0]], dtype=np.float32)
    off = toy_actor(dataclasses.replace(TOY, surprise=SurpriseConfig(enabled=False)))
    stalled = run_episodes(off, WallWorld(start, BOUND), goal, steps=80, seed=0)
    assert stalled["positions"][0, -1, 0] <= 10 and stalled["surprises"] == 0  # stuck in front of the wall
    on = toy_actor(dataclasses.replace(TOY, surprise=SurpriseConfig(enabled=True)))
    out = run_episodes(on, WallWorld(start, BOUND), goal, steps=80, seed=0)
    assert np.linalg.norm(out["positions"][0, -1] - goal[0]) < 1.0, out["positions"][0, -1]
    assert out["surprises"] >= 1 and out["explored_steps"] >= TOY.surprise.steps


class ToyJEPA(ToyLevel1):
    """The integrator as the flat agent's world model: 2-D states are positions."""

    cfg = SimpleNamespace(encoder=SimpleNamespace(dim=2))


@pytest.mark.parametrize("mode", [2, 1])
def test_flat_agent_escapes_the_same_wall_only_with_the_watch(mode):
    start, goal = np.array([[0.0, 0.0]]), np.array([[20.0, 0.0]], dtype=np.float32)
    planning = PlannerConfig(horizon=8, iterations=30, warm_iterations=10, restarts=4, lr=0.5)
    policy = nn.Module()
    policy.forward = lambda s, g: (g - s).clamp(-BOUND, BOUND)  # Mode-1: head straight for the goal
    task = configure("reach", mode=mode)
    outs = [run_episodes(FlatActor(ToyJEPA(), task, planning=planning, bound=BOUND, surprise=SurpriseConfig(enabled=on),
                                   policy=policy if mode == 1 else None), WallWorld(start, BOUND), goal, 80, seed=0)
            for on in (False, True)]
    assert outs[0]["positions"][0, -1, 0] <= 10 and outs[0]["surprises"] == 0
    assert np.linalg.norm(outs[1]["positions"][0, -1] - goal[0]) < 1.0, outs[1]["positions"][0, -1]
    assert outs[1]["surprises"] >= 1


def test_the_watch_costs_one_predictor_call_per_step():
    gd = PlannerConfig(horizon=10, warm_iterations=4, restarts=3)
    assert flat_calls_per_step("gd", gd, 4, surprise=True) == flat_calls_per_step("gd", gd, 4) + 1
    assert (hierarchical_calls_per_step("gd", gd, 2, "gd", gd, 8, surprise=True)
            == hierarchical_calls_per_step("gd", gd, 2, "gd", gd, 8) + 1)
