"""Mode-2 planners against problems whose optimum is known in closed form."""

import dataclasses

import pytest
import torch

from amia.cost.terms import GoalDistance, horizon_weights
from amia.planning.planners import PLANNERS, PlannerConfig, plan, shift


def integrator(s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Linear dynamics ``s[t+1] = s[t] + a[t]``: states ``(B, T, D)``."""
    return s0[:, None] + actions.cumsum(dim=1)


def optimal_actions(s0: torch.Tensor, goal: torch.Tensor, steps: int, bound: float) -> torch.Tensor:
    """For a per-step cost ``sum_t w_t |s_t - g|^2`` with positive weights and box-bounded steps, each coordinate
    moves towards the goal as fast as the box allows and then stays (coordinates are independent)."""
    out, s = [], s0.clone()
    for _ in range(steps):
        a = (goal - s).clamp(-bound, bound)
        out.append(a)
        s = s + a
    return torch.stack(out, dim=1)


CFG = PlannerConfig(horizon=5, iterations=150, samples=256, elites=16, restarts=4, lr=0.2, refine=30,
                    init_std=0.6, min_std=0.01, knot_every=1)


@pytest.mark.parametrize("name", PLANNERS)
def test_planner_finds_the_closed_form_optimum(name):
    torch.manual_seed(0)
    s0 = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-2.0, 0.5]])
    goal = torch.tensor([[3.0, -1.5], [1.5, 2.0], [0.0, -2.0]])
    cost = GoalDistance(goal, final_weight=1.0)
    bound = 1.0
    best = optimal_actions(s0, goal, 5, bound)
    e_opt = cost(integrator(s0, best))
    g = torch.Generator().manual_seed(1)
    result = plan(name, integrator, cost, s0, torch.zeros(3, 5, 2), bound, CFG, generator=g)
    # first pair by hand: x errors 2, 1, 0, 0, 0 and y errors 0.5, 0, ...: (4 + 1 + 0.25) / 2 coords / 5 steps
    assert e_opt[0].item() == pytest.approx(((4 + 1) + 0.25) / 2 / 5)
    assert torch.all(result.energy <= e_opt + 2e-3), (result.energy, e_opt)
    # MPPI averages its candidates, so its actions are the least sharp; the energy bound above holds for all
    atol = 0.2 if name == "mppi" else 0.08
    assert torch.allclose(result.actions, best, atol=atol), (result.actions - best).abs().max()
    assert torch.allclose(result.energy, cost(integrator(s0, result.actions)), atol=1e-5)


@pytest.mark.parametrize("name", PLANNERS)
def test_a_good_proposal_among_several_is_kept(name):
    """Initial plans ``(B, K, T, A)``: with one iteration and a poor first proposal, the planner still returns
    a plan at least as good as the second proposal, the closed-form optimum (per episode)."""
    s0 = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-2.0, 0.5]])
    goal = torch.tensor([[3.0, -1.5], [1.5, 2.0], [0.0, -2.0]])
    cost = GoalDistance(goal, final_weight=1.0)
    best = optimal_actions(s0, goal, 5, 1.0)
    poor = -best
    cfg = PlannerConfig(**{**CFG.__dict__, "iterations": 1, "refine": 1, "populations": 2, "samples": 8, "elites": 2})
    result = plan(name, integrator, cost, s0, torch.stack([poor, best], dim=1), 1.0, cfg,
                  generator=torch.Generator().manual_seed(0))
    e_opt, e_poor = cost(integrator(s0, best)), cost(integrator(s0, poor))
    assert torch.all(e_poor > e_opt + 0.4)
    assert torch.all(result.energy <= e_opt + 1e-6), (result.energy, e_opt)
    with pytest.raises(ValueError, match="initial plans"):
        plan(name, integrator, cost, s0, torch.zeros(5, 2), 1.0, cfg)


@pytest.mark.parametrize("name", PLANNERS)
@pytest.mark.parametrize("populations", [1, 3])
def test_zero_iterations_return_the_lowest_energy_proposal(name, populations):
    """A warm re-plan with no iteration scores its proposals and keeps the best, per episode, unchanged (the
    policy-started re-plan's default); with one population the samplers (hybrid too) see only the first."""
    s0 = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    goal = torch.tensor([[3.0, -1.5], [1.5, 2.0]])
    cost = GoalDistance(goal, final_weight=1.0)
    best, still = optimal_actions(s0, goal, 5, 1.0), torch.zeros(2, 5, 2)
    first, second = torch.stack([best[0], still[1]]), torch.stack([still[0], best[1]])  # each episode's best differs
    cfg = PlannerConfig(**{**CFG.__dict__, "warm_iterations": 0, "refine": 0, "populations": populations, "restarts": 2})
    result = plan(name, integrator, cost, s0, torch.stack([first, second], dim=1), 1.0, cfg, warm=True,
                  generator=torch.Generator().manual_seed(0))
    expected = first if populations == 1 and name != "gd" else best
    assert torch.equal(result.actions, expected)
    assert torch.allclose(result.energy, cost(integrator(s0, expected)))


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_sampling_populations_keep_each_episode_its_own_goal(name):
    """With 4 populations per episode the batch is reshaped to (B * 4): each episode must still be planned
    against its own goal, and its best population's plan returned with that plan's true energy."""
    torch.manual_seed(0)
    s0 = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-2.0, 0.5]])
    goal = torch.tensor([[3.0, -1.5], [1.5, 2.0], [0.0, -2.0]])
    cost = GoalDistance(goal, final_weight=1.0)
    e_opt = cost(integrator(s0, optimal_actions(s0, goal, 5, 1.0)))
    cfg = PlannerConfig(**{**CFG.__dict__, "populations": 4, "samples": 1024, "elites": 64})
    result = plan(name, integrator, cost, s0, torch.zeros(3, 5, 2), 1.0, cfg, generator=torch.Generator().manual_seed(1))
    assert result.actions.shape == (3, 5, 2)
    assert torch.allclose(result.energy, cost(integrator(s0, result.actions)), atol=1e-5)
    assert torch.all(result.energy <= e_opt + 2e-3), (result.energy, e_opt)


@pytest.mark.parametrize("name", PLANNERS)
def test_actions_never_leave_the_box(name):
    g = torch.Generator().manual_seed(0)
    s0 = torch.zeros(4, 2)
    goal = torch.full((4, 2), 100.0)  # far away: every planner pushes against the bound
    cfg = PlannerConfig(horizon=6, iterations=20, samples=64, restarts=3, init_std=5.0)
    result = plan(name, integrator, GoalDistance(goal), s0, torch.zeros(4, 6, 2), 0.7, cfg, generator=g)
    assert result.actions.abs().max() <= 0.7 + 1e-6
    assert result.actions.mean() > 0.6  # and they do push: straight at the goal


@pytest.mark.parametrize("name", PLANNERS)
def test_reached_goal_stays_put(name):
    g = torch.Generator().manual_seed(0)
    s0 = torch.tensor([[1.0, -1.0], [0.3, 0.2]])
    cfg = PlannerConfig(horizon=8, iterations=20, samples=128, restarts=4, min_std=0.01)
    result = plan(name, integrator, GoalDistance(s0.clone()), s0, torch.zeros(2, 8, 2), 1.0, cfg, generator=g)
    final = integrator(s0, result.actions)[:, -1]
    assert (final - s0).norm(dim=-1).max() < 0.1


def test_horizon_weights_and_goal_distance_by_hand():
    w = horizon_weights(3, 2.0)
    assert torch.allclose(w, torch.tensor([0.25, 0.25, 0.5]))
    states = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [0.0, 0.0]]])  # (B=1, T=3, D=2)
    goal = torch.tensor([[0.0, 0.0]])
    # per-step mean squared distance: 0.5, 2, 0 -> 0.25*0.5 + 0.25*2 + 0.5*0 = 0.625
    assert GoalDistance(goal, final_weight=2.0)(states).item() == pytest.approx(0.625)
    # leading candidate dimension is kept: (B=1, N=2, T, D) -> (1, 2)
    both = torch.stack([states[0], torch.zeros(3, 2)])[None]
    assert torch.allclose(GoalDistance(goal, 2.0)(both), torch.tensor([[0.625, 0.0]]))


def test_goal_distance_has_no_parameters():
    term = GoalDistance(torch.zeros(1, 4))
    assert not isinstance(term, torch.nn.Module)
    with pytest.raises(dataclasses.FrozenInstanceError):
        term.final_weight = 3.0  # frozen: the intrinsic cost cannot be changed after construction


def test_shift_drops_executed_actions():
    a = torch.arange(12.0).reshape(1, 6, 2)
    s = shift(a, 2)
    assert torch.equal(s[0, :4], a[0, 2:]) and torch.equal(s[0, 4:], torch.zeros(2, 2))


def test_unknown_planner_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown planner 'bogus'"):
        plan("bogus", integrator, GoalDistance(torch.zeros(1, 2)), torch.zeros(1, 2), torch.zeros(1, 3, 2), 1.0,
             PlannerConfig())


def test_smooth_noise_interpolates_between_knots():
    from amia.planning.planners import smooth_noise

    g = torch.Generator().manual_seed(0)
    n = smooth_noise((3, 9, 2), 4, g, "cpu")  # knots at steps 0, 4, 8
    assert n.shape == (3, 9, 2)
    assert torch.allclose(n[:, 2], (n[:, 0] + n[:, 4]) / 2, atol=1e-6)
    assert torch.allclose(n[:, 5], 0.75 * n[:, 4] + 0.25 * n[:, 8], atol=1e-6)
    u = smooth_noise((1000, 5, 2), 1, g, "cpu", uniform=True)  # knot_every=1: plain independent noise
    assert u.abs().max() <= 1 and u.std() > 0.5
