"""Boredom (amia.cost.boredom, amia.cost.Boredom): the intrinsic cost of lingering away from the goal."""

import math

import pytest
import torch

from amia.cost.boredom import Boredom, BoredomConfig, Trail
from amia.cost.terms import Cost, GoalDistance
from amia.planning.planners import PlannerConfig, plan


def test_energy_is_the_kernel_mass_beyond_the_free_part():
    visited = torch.zeros(1, 15, 2)  # 15 remembered states at the origin
    counted = torch.ones(1, 15)
    counted[0, :3] = 0  # three of them do not count: mass 12 at the origin
    term = Boredom(visited, counted, width=0.5, free=10.0, scale=4.0, every=2)
    # four predicted steps; the term reads steps 2 and 4 (every=2)
    at_origin = torch.zeros(1, 4, 2)
    assert term(at_origin).item() == pytest.approx((12 - 10) / 4)
    # step 2 at distance 1 along x (msd 0.5: kernel e^-1), step 4 at the origin
    states = torch.zeros(1, 4, 2)
    states[0, 1] = torch.tensor([1.0, 0.0])
    near = max(12 * math.exp(-1.0) - 10, 0) / 4  # 4.4 < free: no cost
    assert term(states).item() == pytest.approx((near + (12 - 10) / 4) / 2)
    far = torch.full((1, 4, 2), 5.0)
    assert term(far).item() == 0.0


def test_energy_keeps_leading_dimensions():
    term = Boredom(torch.zeros(2, 12, 3), torch.ones(2, 12), width=0.1, free=10.0, scale=1.0, every=1)
    states = torch.zeros(2, 7, 5, 3)
    states[1] += 10.0  # the second episode's candidates are far from its memory
    e = term(states)
    assert e.shape == (2, 7)
    assert torch.allclose(e[0], torch.full((7,), 2.0)) and torch.all(e[1] == 0)


def test_trail_keeps_the_recent_past_strided_and_skips_the_goal():
    cfg = BoredomConfig(weight=1.0, memory=5, stride=2, gate=0.5)
    trail = Trail(cfg)
    goal = torch.zeros(1, 1)
    assert trail.term(goal) is None
    for t in range(8):  # states 0..7; the memory keeps 3..7, 7 is the current one
        trail.add(torch.tensor([[float(t)]]))
    term = trail.term(goal)
    assert term.visited.flatten().tolist() == [6.0, 4.0]  # from the step before the current one, every 2nd
    assert term.counted.flatten().tolist() == [1.0, 1.0]
    near = Trail(cfg)
    for v in (0.0, 0.5, 3.0):
        near.add(torch.tensor([[v]]))
    assert near.term(goal).counted.flatten().tolist() == [0.0]  # 0.5^2 = 0.25 < gate: at the goal, not bored


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="width=0.0: expected a number > 0"):
        BoredomConfig(width=0.0)
    with pytest.raises(ValueError, match="memory=0: expected an integer >= 1"):
        BoredomConfig(memory=0)


def blocked(s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """A wall at x = 0 with no door in reach: x never passes 0, y moves freely. States ``(B, T, 2)``."""
    s = s0[:, None] + actions.cumsum(dim=1)
    return torch.stack([s[..., 0].clamp(max=0.0), s[..., 1]], dim=-1)


@pytest.mark.parametrize("name", ["mppi", "cem"])
def test_a_plan_stuck_at_a_wall_leaves_the_spot_where_it_lingered(name):
    s0, goal = torch.zeros(1, 2), torch.tensor([[3.0, 0.0]])  # the goal is behind the wall
    cfg = PlannerConfig(horizon=6, iterations=30, samples=128, elites=12, knot_every=1, init_std=0.5)
    cost = Cost({"goal": (1.0, GoalDistance(goal, final_weight=1.0))})
    plain = plan(name, blocked, cost, s0, torch.zeros(1, 6, 2), 0.5, cfg, generator=torch.Generator().manual_seed(0))
    end = blocked(s0, plain.actions)[0, -1]
    assert abs(end[1].item()) < 0.3  # the goal energy alone keeps it level with the goal, at the wall
    trail = Trail(BoredomConfig(weight=1.0, width=0.5, free=10.0, scale=5.0, memory=60, stride=2, every=1))
    for _ in range(60):
        trail.add(s0)
    bored = Cost({**cost.intrinsic, "bored": (1.0, trail.term(goal))})
    moved = plan(name, blocked, bored, s0, torch.zeros(1, 6, 2), 0.5, cfg, generator=torch.Generator().manual_seed(0))
    end = blocked(s0, moved.actions)[0, -1]
    # 30 counted states at the origin: mass 30 exp(-y^2) at height y (msd y^2 / 2, width 0.5), free below 10, so
    # boredom vanishes from |y| = sqrt(ln 3) on, while the goal energy grows with y^2: the optimum is that kink
    assert abs(end[1].item()) == pytest.approx(math.sqrt(math.log(3.0)), abs=0.1)
    assert end[0].item() == pytest.approx(0.0, abs=0.3)  # still pressed toward the goal
