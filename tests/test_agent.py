"""The whole agent: immutable intrinsic cost, configurator, critic, Mode-1 policy and its distillation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from amia.cost.configurator import TASKS, build_cost, configure, moving_point
from amia.cost.terms import CriticTerm, Evade, ForbiddenRegion, GoalDistance, KeepAway
from amia.models.critic import Critic
from amia.models.policy import Policy, PolicyConfig, policy_rollout
from amia.models.probe import LinearProbe
from amia.planning.planners import PlannerConfig, plan
from amia.training.policy import AmortiseConfig, fit_policy, fit_policy_to_energy

IDENTITY = LinearProbe(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))  # 2-D states are positions


def integrator(s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return s0[:, None] + actions.cumsum(dim=1)


def intrinsic_tensors(cost) -> list[torch.Tensor]:
    out = []
    for _, term in cost.intrinsic.values():
        for f in dataclasses.fields(term):
            v = getattr(term, f.name)
            out += [v] if torch.is_tensor(v) else [getattr(v, g.name) for g in dataclasses.fields(v)] \
                if dataclasses.is_dataclass(v) else []
    return out


def test_forbidden_region_and_keep_away_by_hand():
    region = ForbiddenRegion(IDENTITY, (0.0, 0.0, 4.0, 2.0), margin=1.0)
    states = torch.tensor([[[2.0, 1.0], [10.0, 10.0], [4.5, 1.0]]])  # (B=1, T=3, 2)
    # depths inside the grown rectangle [-1, 5] x [-1, 3]: min(3, 3, 2, 2) = 2; outside: 0; min(5.5, .5, 2, 2) = .5
    assert region(states).item() == pytest.approx(4.0 + 0.25)
    away = KeepAway(IDENTITY, torch.tensor([[[0.0, 0.0], [10.0, 13.0], [0.0, 0.0]]]), radius=5.0)
    # distances 2.24, 3, 4.61: shortfalls 2.76, 2, 0.39 (squared and summed)
    d = torch.tensor([5 ** 0.5, 3.0, (4.5 ** 2 + 1) ** 0.5])
    assert away(states).item() == pytest.approx(float((5 - d).pow(2).sum()), rel=1e-5)
    # candidates dimension kept: (B=1, N=2, T, 2) -> (1, 2)
    both = torch.stack([states[0], states[0] + 100])[None]
    assert region(both).shape == (1, 2) and region(both)[0, 1].item() == 0.0


def test_intrinsic_terms_have_no_trainable_parameters_and_training_leaves_them_untouched():
    goal = torch.randn(4, 8)
    probe = LinearProbe(torch.randn(9, 2))
    task = configure("reach_avoid")
    critic = Critic(8, 8, hidden=16)
    cost = build_cost(task, goal, probe, critic=critic)
    tensors = intrinsic_tensors(cost)
    assert tensors and not any(t.requires_grad or isinstance(t, torch.nn.Parameter) for t in tensors)
    before = [t.clone() for t in tensors]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cost.intrinsic["goal"][1].goal = torch.zeros(4, 8)
    # every training loop that could touch them: critic fitting, policy fitting, gradient planning through the cost
    from amia.training.critics import HindsightTD, fit_hindsight_critic

    fit_hindsight_critic(critic, torch.randn(64, 8), np.array([0, 32, 64]), 2, HindsightTD(), steps=20, batch_size=16,
                         lr=1e-3)
    policy = Policy(PolicyConfig(hidden=16, layers=2, steps=20, batch_size=16), 8, 8, 2, 1.0)
    fit_policy(policy, torch.randn(64, 8), goal.repeat(16, 1), torch.rand(64, 2) - 0.5)
    rollout = lambda s0, a: s0[:, None] + torch.nn.functional.pad(a, (0, 6)).cumsum(1)
    plan("gd", rollout, build_cost(task, goal, probe, critic=critic), torch.randn(4, 8), torch.zeros(4, 5, 2), 1.0,
         PlannerConfig(horizon=5, iterations=5, restarts=2))
    assert all(torch.equal(a, b) for a, b in zip(before, tensors))
    assert any(p.requires_grad for p in critic.parameters())  # the critic, by contrast, is trainable


def test_configurator_weights_change_the_plan_as_expected():
    """From (0, 0) to (12, 0) with a box in the way: without its weight the best plan goes straight through the
    box; with it, no planned position enters the box and the goal is still reached."""
    s0, goal = torch.zeros(1, 2), torch.tensor([[12.0, 0.0]])
    cfg = PlannerConfig(horizon=12, iterations=150, restarts=8, lr=0.3, knot_every=1)
    box = (4.0, -2.0, 8.0, 2.0)
    paths = {}
    for weight in (0.0, 1.0):
        task = configure("reach_avoid", forbid_weight=weight, region=box, region_margin=0.5, final_weight=5.0)
        cost = build_cost(task, goal, IDENTITY)
        result = plan("gd", integrator, cost, s0, torch.zeros(1, 12, 2), 2.0, cfg, generator=torch.Generator().manual_seed(0))
        paths[weight] = integrator(s0, result.actions)[0]
    inside = lambda p: (p[:, 0] > 4) & (p[:, 0] < 8) & (p[:, 1] > -2) & (p[:, 1] < 2)
    assert inside(paths[0.0]).any() and paths[0.0][:, 1].abs().max() < 0.5  # straight through
    assert not inside(paths[1.0]).any()
    assert (paths[1.0][-1] - goal[0]).norm() < 0.5


def test_configurator_tasks_and_errors():
    assert set(TASKS) == {"reach", "reach_avoid", "keep_away", "evade"}
    assert configure("keep_away").goal_weight == 0 and configure("keep_away").away_weight > 0
    assert configure("evade").goal_weight == 0 and configure("evade").evade_weight > 0
    with pytest.raises(ValueError, match="unknown task 'fly'"):
        configure("fly")
    with pytest.raises(ValueError, match="unknown task setting"):
        configure("reach", speed=3)
    with pytest.raises(ValueError, match="position probe"):
        build_cost(configure("reach_avoid"), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="trained critic"):
        build_cost(configure("reach", critic_weight=1.0), torch.zeros(1, 2))


def test_moving_point_bounces_inside_the_frame():
    p = moving_point(np.array([[10.0, 32.0]]), np.array([[60.0, 32.0]]), 2.0, 100)
    assert p.shape == (1, 101, 2)
    assert p[..., 0].min() >= 4 and p[..., 0].max() <= 60
    assert np.allclose(np.abs(np.diff(p[0, :, 0])), 2.0)  # constant speed, reflected at the borders
    assert p[0, 25, 0] == pytest.approx(60.0) and p[0, 24, 0] == p[0, 26, 0] == pytest.approx(58.0)


def test_critic_term_scores_the_last_state_with_its_episode_context():
    critic = Critic(2, 2, hidden=8)
    ctx = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    states = torch.randn(2, 3, 5, 2)  # (B, N, T, D)
    e = CriticTerm(critic, ctx)(states)
    assert e.shape == (2, 3)
    assert torch.allclose(e[1, 2], critic(states[1, 2, -1][None], ctx[1][None])[0])
    assert (e >= 0).all()


def test_policy_learns_a_known_controller_and_rolls_out_through_the_predictor():
    torch.manual_seed(0)
    s, g = torch.rand(4096, 2) * 10, torch.rand(4096, 2) * 10
    target = (g - s).clamp(-1, 1)  # the optimal one-step controller of the integrator
    policy = Policy(PolicyConfig(hidden=64, layers=2, steps=1500, batch_size=256, lr=3e-3), 2, 2, 2, 1.0)
    losses = fit_policy(policy, s, g, target)
    assert np.mean(losses[-50:]) < 0.01 < losses[0]
    with torch.no_grad():
        s0, goal = torch.tensor([[3.0, 6.0]]), torch.tensor([[7.0, 4.0]])
        actions = policy_rollout(policy, lambda st, a: st + a, s0, goal, 6)
    assert actions.shape == (1, 6, 2)
    assert torch.allclose(integrator(s0, actions)[0, -1], goal[0], atol=0.3), integrator(s0, actions)
    with pytest.raises(ValueError, match="share their first size"):
        fit_policy(policy, s, g[:10], target)


def test_amortised_policy_minimises_the_energy_to_the_known_controller_without_labels():
    torch.manual_seed(0)
    s, g = torch.rand(4096, 2) * 10, torch.rand(4096, 2) * 10
    policy = Policy(PolicyConfig(hidden=64, layers=2), 2, 2, 2, 1.0)
    predictor = nn.Linear(2, 2)  # stands in for the frozen world model's parameters: they must not move
    before = [p.clone() for p in predictor.parameters()]

    def step(st, a):  # the integrator, with a frozen module in its graph
        return st + a + 0 * predictor(st)

    cfg = AmortiseConfig(horizon=1, steps=1500, batch_size=256, lr=3e-3, hindsight_goals=0.5)
    losses = fit_policy_to_energy(policy, step, lambda goal: GoalDistance(goal, 1.0), s, g, cfg)
    with torch.no_grad():  # the energy left at the optimum: the known controller's on the same data
        floor = GoalDistance(g, 1.0)((s + (g - s).clamp(-1, 1))[:, None]).mean().item()
    assert np.mean(losses[-100:]) < floor + 0.1 < np.mean(losses[:20]), (floor, np.mean(losses[-100:]))
    assert all(torch.equal(a, b) for a, b in zip(before, predictor.parameters()))
    with torch.no_grad():  # one step of energy (s + a - g)^2 in the box [-1, 1]: a* = clip(g - s, -1, 1)
        s1, g1 = torch.rand(256, 2) * 10, torch.rand(256, 2) * 10
        err = (policy(s1, g1) - (g1 - s1).clamp(-1, 1)).abs()
    assert err.mean() < 0.1, err.mean()
    with pytest.raises(ValueError, match="must match states"):
        fit_policy_to_energy(policy, step, lambda goal: GoalDistance(goal, 1.0), s, g[:10], cfg)


def test_evade_term_against_hand_computed_values():
    """States are (x, y, cx, cy): the squared shortfall of the agent-chaser distance below the radius, plus the
    barrier's below its radius, minus the lean per px, summed over the horizon."""
    probe = LinearProbe(torch.cat([torch.eye(4), torch.zeros(1, 4)]))
    states = torch.tensor([[[0.0, 0.0, 3.0, 4.0], [0.0, 0.0, 30.0, 0.0]]])  # (B=1, T=2, 4): distances 5 and 30
    plain = dict(barrier=0.0, lean=0.0)
    assert Evade(probe, radius=10.0, **plain)(states).item() == pytest.approx(25.0, rel=1e-4)  # (10 - 5)^2 + 0
    assert Evade(probe, radius=40.0, **plain)(states).item() == pytest.approx(35.0**2 + 10.0**2, rel=1e-4)
    # barrier: 10 x (8 - 5)^2 on the near step; lean: -0.5 x (5 + 30)
    full = Evade(probe, radius=10.0, barrier_radius=8.0, barrier=10.0, lean=0.5)(states).item()
    assert full == pytest.approx(25.0 + 90.0 - 17.5, rel=1e-4)
    with pytest.raises(ValueError, match=r"\(x, y, cx, cy\)"):
        Evade(IDENTITY)(states[..., :2])
    with pytest.raises(ValueError, match="position probe"):
        build_cost(configure("evade"), torch.zeros(1, 4))
