"""Latent variables (Sec. 4.5, 4.8): the free energy, R(z), the prior, and the rollouts that planners use."""

import math

import pytest
import torch

from amia.infra.validate import FieldError
from amia.models.latent import RELAX, Latent, gaussian_kl, gaussian_nll, sparsity_ramp
from amia.models.predictor import Predictor, PredictorConfig
from amia.planning.uncertainty import UncertaintyConfig, risk_measure, uncertain_planning


class Shift(Predictor):
    """``Pred(s, a, z) = s + z @ moves``: each latent value moves the state by a known vector."""

    def __init__(self, moves: torch.Tensor):
        k, d = moves.shape
        super().__init__(PredictorConfig(hidden=4, layers=1, latent="discrete", latent_dim=k), d, 1)
        self.moves = moves

    def forward(self, s, a, z=None):
        z = self.latent.mode(s, a) if z is None else z
        return s + z @ self.moves


def fixed_prior(latent: Latent, probs: list[float]) -> None:
    last = latent.prior[-1]
    torch.nn.init.zeros_(last.weight)
    with torch.no_grad():
        last.bias.copy_(torch.tensor(probs).log())


@pytest.mark.parametrize("target, best, energy, prior", [
    # target +1: E = (0, 2): z* = 0
    ([1.0, 0.0], 0, (1 - RELAX) * 0.0 + RELAX * 2.0, 0.3),
    # target +0.2: E = (0.32, 0.72): z* = 0, although z = 1 has the least E + R (1.08 against 1.52)
    ([0.2, 0.0], 0, (1 - RELAX) * 0.32 + RELAX * 0.72, 0.3),
    # target -1: E = (2, 0): z* = 1
    ([-1.0, 0.0], 1, (1 - RELAX) * 0.0 + RELAX * 2.0, 0.7),
])
def test_discrete_step_takes_the_value_of_least_energy(target, best, energy, prior):
    """Relaxed winner-take-all: ``z* = argmin E`` (the prior does not vote), the energy weighs ``z*`` by
    ``1 - RELAX`` and the other value by ``RELAX``, and ``R = -log p(z* | s, a)``."""
    moves = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    pred = Shift(moves)
    fixed_prior(pred.latent, [0.3, 0.7])
    s, a = torch.zeros(1, 2), torch.zeros(1, 1)
    out, e, r = pred.latent.step(pred, s, a, torch.tensor([target]), beta=1.0)
    assert torch.allclose(out, moves[best:best + 1])
    assert e.item() == pytest.approx(energy, rel=1e-5) and r.item() == pytest.approx(-math.log(prior), rel=1e-5)


def test_discrete_z_is_inferred_from_the_observed_transition_not_the_rollout():
    """In a rollout the prediction starts from the previous prediction (here at x = 5) while the encoded state is at
    x = 0 and the next one at x = 1: z* = 0 (the move +1) explains the transition, although z = 1 (-1) would pull
    the drifted prediction closer to the target."""
    moves = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    pred = Shift(moves)
    fixed_prior(pred.latent, [0.5, 0.5])
    rolled, observed, target, a = torch.tensor([[5.0, 0.0]]), torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), torch.zeros(1, 1)
    out, e, _ = pred.latent.step(pred, rolled, a, target, beta=1.0, observed=observed)
    assert torch.allclose(out, torch.tensor([[6.0, 0.0]]))
    assert e.item() == pytest.approx((1 - RELAX) * 12.5 + RELAX * 4.5, rel=1e-5)
    out, _, _ = pred.latent.step(pred, rolled, a, target, beta=1.0)  # without it: the best value from the rollout
    assert torch.allclose(out, torch.tensor([[4.0, 0.0]]))


def test_relaxation_by_prior_pulls_each_losing_value_by_its_probability():
    """Moves (0, +1, -1), prior (0.9, 0.09, 0.01), target 0: E = (0, 0.5, 0.5) (means over 2 dimensions), z* = 0.
    Uniformly, each loser learns with RELAX / 2; by prior, with RELAX x its probability: the rare value (-1)
    barely moves towards the common outcome."""
    moves = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    s, a, target = torch.zeros(1, 2), torch.zeros(1, 1), torch.zeros(1, 2)
    pred = Shift(moves)
    fixed_prior(pred.latent, [0.9, 0.09, 0.01])
    assert pred.latent.step(pred, s, a, target, beta=0.1)[1].item() == pytest.approx(RELAX / 2 * (0.5 + 0.5), rel=1e-5)
    pred.latent.relax_by_prior = True
    e = pred.latent.step(pred, s, a, target, beta=0.1)[1].item()
    assert e == pytest.approx(RELAX * (0.09 + 0.01) * 0.5, rel=1e-4)
    with pytest.raises(FieldError, match="latent_relax_by_prior"):
        PredictorConfig(latent="gaussian", latent_dim=2, latent_relax_by_prior=True)
    built = Predictor(PredictorConfig(latent="discrete", latent_dim=3, latent_relax_by_prior=True), 4, 1)
    assert built.latent.relax_by_prior


def test_sparsity_charges_every_value_but_the_first():
    """Moves (0, +1, -1) for z = (0, 1, 2); target +0.8: E = (0.32, 0.02, 1.62). Without sparsity z* = 1; a cost
    of 0.5 on z != 0 makes "nothing random happened" (z = 0) the cheaper explanation: E + 0.5 [z != 0] =
    (0.32, 0.52, 2.12). The free energy charges the same."""
    moves = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    pred = Shift(moves)
    fixed_prior(pred.latent, [1 / 3] * 3)
    s, a, target = torch.zeros(1, 2), torch.zeros(1, 1), torch.tensor([[0.8, 0.0]])
    assert torch.allclose(pred.latent.step(pred, s, a, target, beta=0.1)[0], moves[1:2])
    out, e, _ = pred.latent.step(pred, s, a, target, beta=0.1, sparsity=0.5)
    assert torch.allclose(out, moves[0:1])
    assert e.item() == pytest.approx((1 - RELAX) * 0.32 + RELAX / 2 * (0.02 + 1.62), rel=1e-5)
    f = pred.latent.free_energy(pred, s, a, target, 0.1, sparsity=0.5).item()
    assert f == pytest.approx(0.32 + 0.1 * math.log(3), rel=1e-5)
    assert pred.latent.free_energy(pred, s, a, target, 0.1).item() == pytest.approx(0.02 + 0.1 * math.log(3), rel=1e-5)


def test_sparsity_ramps_in_after_a_fifth_of_training():
    assert [sparsity_ramp(p) for p in (0.0, 0.2, 0.35, 0.5, 1.0)] == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def test_sparse_latent_keeps_value_zero_where_the_world_is_certain():
    """Right of x = 0 the next state is one step right (p .7) or left (.3); left of it nothing moves. With
    sparsity the prior puts value 0 where nothing random happens, and samples both outcomes with their
    frequencies where something does."""
    torch.manual_seed(0)
    cfg = PredictorConfig(hidden=64, layers=2, latent="discrete", latent_dim=3, latent_weight=0.1, latent_sparsity=0.05)
    pred = Predictor(cfg, 2, 1)
    opt = torch.optim.Adam(pred.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    steps = 600
    for i in range(steps):
        s, a, nxt = two_outcome_batch(256, g)
        nxt = torch.where(s[:, :1] > 0, nxt, s)
        _, e, r = pred.latent.step(pred, s, a, nxt, 0.1, sparsity=0.05 * sparsity_ramp(i / steps))
        loss = e.mean() + 0.1 * r.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred.eval()
    s = torch.randn(2000, 2, generator=torch.Generator().manual_seed(5))
    a = torch.zeros(2000, 1)
    with torch.no_grad():
        probs = torch.softmax(pred.latent.prior_params(s, a), -1)
        futures = pred.sample_rollout(s, a[:, None], 64, torch.Generator().manual_seed(2))[:, :, 0] - s[:, None]
    certain = s[:, 0] < -0.3
    assert probs[certain, 0].mean().item() > 0.9
    assert futures[certain].abs().max(-1).values.median().item() < 0.1  # sampled futures stay put
    random = s[:, 0] > 0.3
    went_right = (futures[random][..., 0] > 0.5).float().mean().item()
    went_left = (futures[random][..., 0] < -0.5).float().mean().item()
    assert went_right == pytest.approx(0.7, abs=0.07) and went_left == pytest.approx(0.3, abs=0.07)


def test_prior_reads_the_action():
    """The same state with two actions: the prior can give each its own outcome frequencies (the action decides
    whether the agent steps into the randomness)."""
    torch.manual_seed(0)
    latent = Latent("discrete", 2, 2, 1, hidden=16)
    opt = torch.optim.Adam(latent.parameters(), lr=1e-2)
    s, a = torch.zeros(400, 2), torch.cat([torch.zeros(200, 1), torch.ones(200, 1)])
    z = torch.cat([torch.zeros(200, dtype=torch.long), (torch.arange(200) % 5 == 0).long()])  # a = 1: value 1 w.p. .2
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(latent.prior_params(s, a), z)
        opt.zero_grad()
        loss.backward()
        opt.step()
    p = torch.softmax(latent.prior_params(torch.zeros(2, 2), torch.tensor([[0.0], [1.0]])), -1)[:, 1]
    assert p[0].item() < 0.03 and p[1].item() == pytest.approx(0.2, abs=0.03)


def test_free_energy_is_the_minimum_over_z():
    pred = Shift(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    fixed_prior(pred.latent, [0.3, 0.7])
    s, a, target = torch.zeros(1, 2), torch.zeros(1, 1), torch.tensor([[0.2, 0.0]])
    # E = (0.32, 0.72); R = (-log .3, -log .7): with beta 1 the prior tips the minimum to z = 1 ...
    assert pred.latent.free_energy(pred, s, a, target, 1.0).item() == pytest.approx(0.72 - math.log(0.7), rel=1e-5)
    # ... with a small beta the energy decides
    assert pred.latent.free_energy(pred, s, a, target, 0.01).item() == pytest.approx(0.32 - 0.01 * math.log(0.3), rel=1e-5)


def two_outcome_batch(n: int, g: torch.Generator, p_right: float = 0.7, noise: float = 0.0):
    """States ``N(0, I)``; the next state is one step right (probability ``p_right``) or left, plus ``noise``."""
    s = torch.randn(n, 2, generator=g)
    right = torch.rand(n, generator=g) < p_right
    step = torch.where(right[:, None], torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0]))
    return s, torch.zeros(n, 1), s + step + noise * torch.randn(n, 2, generator=g)


def train_toy(kind: str, dim: int, steps: int = 400, beta: float = 0.1, noise: float = 0.0) -> Predictor:
    torch.manual_seed(0)
    pred = Predictor(PredictorConfig(hidden=64, layers=2, latent=kind, latent_dim=dim, latent_weight=beta), 2, 1)
    opt = torch.optim.Adam(pred.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        s, a, nxt = two_outcome_batch(256, g, noise=noise)
        _, e, r = pred.latent.step(pred, s, a, nxt, beta)
        loss = e.mean() + beta * r.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return pred.eval()


def test_discrete_latent_learns_both_outcomes_and_their_frequencies():
    pred = train_toy("discrete", 2)
    s = torch.randn(500, 2, generator=torch.Generator().manual_seed(5))
    a = torch.zeros(500, 1)
    with torch.no_grad():
        moves = torch.stack([pred(s, a, torch.eye(2)[i].expand(500, 2)) - s for i in range(2)], 1)  # (N, 2, 2)
        probs = torch.softmax(pred.latent.prior_params(s, a), -1)
    right = moves[:, :, 0].mean(0).argmax()  # the value that moves right
    # relaxed winner-take-all's fixed point: each value is the weighted mean of the outcome it wins (weight
    # 1 - RELAX) and the one it loses (RELAX); with these frequencies (.7, .3)
    e = RELAX
    fixed_right = (0.7 * (1 - e) - 0.3 * e) / (0.7 * (1 - e) + 0.3 * e)
    fixed_left = (0.7 * e - 0.3 * (1 - e)) / (0.7 * e + 0.3 * (1 - e))
    assert torch.allclose(moves[:, right].mean(0), torch.tensor([fixed_right, 0.0]), atol=0.03)
    assert torch.allclose(moves[:, 1 - right].mean(0), torch.tensor([fixed_left, 0.0]), atol=0.03)
    assert moves[:, :, 0].std(0).max().item() < 0.05  # the same move from every state
    assert probs[:, right].mean().item() == pytest.approx(0.7, abs=0.05)
    # sampled futures reproduce the frequencies
    futures = pred.sample_rollout(s[:50], a[:50, None], 400, torch.Generator().manual_seed(2))[:, :, 0]
    went_right = ((futures - s[:50, None])[..., 0] > 0).float().mean().item()
    assert went_right == pytest.approx(0.7, abs=0.04)


def test_without_r_the_latent_explains_any_target():
    """The energy gap between true and shuffled next states (relative to their distance): large with a discrete z,
    gone with a free one, which learns to carry the whole next state (here the outcome plus continuous noise)."""
    g = torch.Generator().manual_seed(9)
    s, a, nxt = two_outcome_batch(512, g, noise=0.5)
    shuffled = nxt[torch.randperm(512, generator=g)]
    gaps = {}
    for kind, dim in (("discrete", 2), ("free", 2)):
        pred = train_toy(kind, dim, noise=0.5)
        f_true = pred.latent.free_energy(pred, s, a, nxt, 0.1).mean()
        f_shuf = pred.latent.free_energy(pred, s, a, shuffled, 0.1).mean()
        gaps[kind] = (f_shuf - f_true).item() / (nxt - shuffled).pow(2).mean().item()
    assert gaps["discrete"] > 0.3
    assert gaps["free"] < 0.1


def test_gaussian_kl_and_nll_match_torch():
    g = torch.Generator().manual_seed(0)
    mu, ls, pm, pls, z = (torch.randn(5, 3, generator=g) * 0.5 for _ in range(5))
    q, p = torch.distributions.Normal(mu, ls.exp()), torch.distributions.Normal(pm, pls.exp())
    assert torch.allclose(gaussian_kl(mu, ls, pm, pls), torch.distributions.kl_divergence(q, p).sum(-1), atol=1e-5)
    assert torch.allclose(gaussian_nll(z, mu, ls), -q.log_prob(z).sum(-1), atol=1e-5)


def test_gaussian_latent_trains_and_samples():
    pred = train_toy("gaussian", 1, steps=300)
    s = torch.randn(8, 2, generator=torch.Generator().manual_seed(3))
    futures = pred.sample_rollout(s, torch.zeros(8, 1, 1), 64, torch.Generator().manual_seed(4))
    assert futures.shape == (8, 64, 1, 2) and torch.isfinite(futures).all()
    spread = (futures[:, :, 0, 0] - s[:, None, 0]).std(1).mean().item()
    assert spread > 0.3  # the futures are not one point: z carries the outcome


def test_prior_samples_follow_the_prior():
    latent = Latent("discrete", 3, 4, 1)
    fixed_prior(latent, [0.2, 0.5, 0.3])
    noise = latent.noise((20000,), torch.Generator().manual_seed(0), "cpu")
    z = latent.sample(torch.zeros(20000, 4), torch.zeros(20000, 1), noise)
    assert torch.allclose(z.mean(0), torch.tensor([0.2, 0.5, 0.3]), atol=0.01)
    assert torch.equal(latent.mode(torch.zeros(2, 4), torch.zeros(2, 1)), torch.tensor([[0.0, 1.0, 0.0]] * 2))


def test_risk_measures_against_hand_computed_values():
    c = torch.tensor([[1.0, 2.0, 3.0, 10.0]])
    assert risk_measure(c, "expected").item() == pytest.approx(4.0)
    assert risk_measure(c, "mean_std", std_weight=1.0).item() == pytest.approx(4.0 + math.sqrt(12.5))
    assert risk_measure(c, "mean_std", std_weight=2.0).item() == pytest.approx(4.0 + 2 * math.sqrt(12.5))
    assert risk_measure(c, "cvar", cvar_fraction=0.25).item() == pytest.approx(10.0)
    assert risk_measure(c, "cvar", cvar_fraction=0.5).item() == pytest.approx(6.5)
    assert risk_measure(c, "cvar", cvar_fraction=1.0).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="risk measure"):
        risk_measure(c, "adversarial")


def test_adversarial_rollout_takes_the_worst_latent_each_step():
    pred = Shift(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]))
    s0, actions = torch.zeros(2, 2), torch.zeros(2, 5, 1)
    right = pred.adversarial_rollout(s0, actions, lambda st: st[..., 0])
    left = pred.adversarial_rollout(s0, actions, lambda st: -st[..., 0])
    assert torch.allclose(right[:, -1, 0], torch.full((2,), 5.0))
    assert torch.allclose(left[:, -1, 0], torch.full((2,), -5.0))


def test_uncertain_planning_combines_futures_per_plan():
    """Two episodes x three candidate plans x K futures: the combined cost is the risk measure of the plan's futures."""
    pred = Shift(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    fixed_prior(pred.latent, [0.7, 0.3])
    cost = lambda st: st[..., -1, 0].pow(2)  # noqa: E731  (B, ..., T, D) -> (B, ...)
    cfg = UncertaintyConfig(futures=2000, risk="expected")
    rollout, combined = uncertain_planning(pred, cost, cfg, episodes=2, generator=torch.Generator().manual_seed(0))
    s0 = torch.zeros(6, 2)
    states = rollout(s0, torch.zeros(6, 2, 1))  # (M, K, T, D)
    assert states.shape == (6, 2000, 2, 2)
    e = combined(states.reshape(2, 3, *states.shape[1:]))
    # after two steps x is +2 (p .49), 0 (p .42) or -2 (p .09): E[x^2] = 4 * 0.58
    assert torch.allclose(e, torch.full((2, 3), 2.32), atol=0.12)
    off, same = uncertain_planning(pred, cost, UncertaintyConfig(), 2)
    assert off == pred.rollout and same is cost


class Cliff(Predictor):
    """One step of ``x' = x + a / 2``; with the second latent value (probability 0.1 under ``fixed_prior``) a step
    to the right (``a > 0``) falls to ``x' = -1`` instead."""

    def __init__(self):
        super().__init__(PredictorConfig(hidden=4, layers=1, latent="discrete", latent_dim=2), 1, 1)

    def forward(self, s, a, z=None):
        z = self.latent.mode(s, a) if z is None else z
        fall = (z[..., 1:] > 0.5) & (a > 0)
        return torch.where(fall, torch.full_like(s, -1.0), s + a / 2)


@pytest.mark.parametrize("risk, risky", [("expected", True), ("cvar", False), ("mean_std", False)])
def test_risk_averse_planning_declines_a_gamble_that_expected_cost_takes(risk, risky):
    """Goal x = 1 from x = 0, one step, a in [-1, 1], cost (x' - 1)^2. Stepping right costs 0.25 (p 0.9) or 4 (a fall,
    p 0.1): expected 0.625, CVaR(0.2) 2.125, mean + std 1.75; staying costs 1. So expected cost steps right (a = 1)
    and the risk-averse measures stay (a <= 0)."""
    from amia.planning.planners import PlannerConfig, plan

    pred = Cliff()
    fixed_prior(pred.latent, [0.9, 0.1])
    cost = lambda st: (st[..., -1, 0] - 1).pow(2)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    rollout, combined = uncertain_planning(pred, cost, UncertaintyConfig(futures=4000, risk=risk), 1, g)
    cfg = PlannerConfig(horizon=1, iterations=8, samples=64, elites=8, populations=1, knot_every=1)
    best = plan("cem", rollout, combined, torch.zeros(1, 1), torch.zeros(1, 1, 1), 1.0, cfg, generator=g)
    a = best.actions[0, 0, 0].item()
    assert (a > 0.8) if risky else (a <= 0.0)
    expected_energy = {"expected": 0.625, "cvar": 1.0, "mean_std": 1.0}[risk]
    assert best.energy.item() == pytest.approx(expected_energy, abs=0.08)


TINY = ["batch_size=8", "window=3", "val_every=0", "log_every=2", "checkpoint_every=4", "diag_windows=16", "threads=1",
        "warmup=2", "steps=4", "jepa.encoder.dim=8", "jepa.encoder.channels=[4,8]", "jepa.encoder.downsample=4",
        "jepa.predictor.hidden=16", "collect.episodes=8", "collect.steps=6", "collect.batch=8"]


@pytest.mark.parametrize("env_id, task, risk", [("amia/Hazard-v0", "reach", "cvar"),
                                                ("amia/Chaser-v0", "evade", "adversarial")])
def test_a_latent_run_trains_and_plans_under_each_risk_measure(tmp_path, env_id, task, risk):
    """End to end on a tiny scale: the world's preset trains a discrete latent, diagnostics report what z
    carries, and the protocol plans over sampled (or adversarial) futures, with compute counted per future."""
    from amia.eval.protocol import EvalConfig, evaluate
    from amia.infra.config import apply_overrides
    from amia.training.distill import save_probe
    from amia.training.world_model import default_config, train

    cfg = apply_overrides(default_config(env_id), TINY)
    assert cfg.jepa.predictor.latent == "discrete"
    metrics = train(env_id, tmp_path / "run", cfg, progress=False)
    assert 0.0 <= metrics["latent_usage_entropy"] <= math.log(cfg.jepa.predictor.latent_dim) + 1e-6
    assert math.isfinite(metrics["latent_energy_gap_ratio"])
    probe = save_probe(tmp_path / "run")
    assert probe.weight.shape[1] == (4 if env_id == "amia/Chaser-v0" else 2)  # the chaser's position too
    over = ["episodes=3", "max_steps=3", "timing_calls=0", "planning.horizon=4", "planning.iterations=1",
            "planning.restarts=2", f"task={task}", f"uncertainty.risk={risk}", "uncertainty.futures=3"]
    r = evaluate(tmp_path / "run", apply_overrides(EvalConfig(), over), progress=False)
    futures = cfg.jepa.predictor.latent_dim if risk == "adversarial" else 3
    assert r["risk"] == risk and r["futures"] == futures
    assert r["predictor_calls_per_step"] == futures * (4 + 1) * 2 * 4 / 4  # (warm its + 1) x restarts x T / replan
    assert "failure_rate" in r and 0.0 <= r["success_rate"] <= 1.0


RING = torch.stack([torch.cos(torch.arange(8) * math.pi / 4), torch.sin(torch.arange(8) * math.pi / 4)], 1)


def train_ring(revive: float, steps: int = 300) -> int:
    """A world of 8 equally likely unit moves (a wandering chaser); the number of moves that some value of an
    8-valued ``z`` reproduces within 0.25 after training, reviving dead values every 50 steps of the first half."""
    torch.manual_seed(0)
    pred = Predictor(PredictorConfig(hidden=64, layers=2, latent="discrete", latent_dim=8), 2, 1)
    opt = torch.optim.Adam(pred.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        s, a = torch.randn(128, 2, generator=g), torch.zeros(128, 1)
        nxt = s + RING[torch.randint(0, 8, (128,), generator=g)]
        if revive and 0 < step < steps // 2 and step % 50 == 0:
            wins = torch.bincount(pred.latent.winners(pred, s, a, nxt), minlength=8).float()
            pred.latent.revive(pred, wins, revive, torch.Generator().manual_seed(step))
        _, e, r = pred.latent.step(pred, s, a, nxt, 0.1)
        opt.zero_grad()
        (e.mean() + 0.1 * r.mean()).backward()
        opt.step()
    s, a = torch.randn(300, 2, generator=torch.Generator().manual_seed(9)), torch.zeros(300, 1)
    with torch.no_grad():
        moves = torch.stack([pred(s, a, torch.eye(8)[i].expand(300, 8)) - s for i in range(8)], 1).mean(0)
    return int(((moves[:, None] - RING[None]).norm(dim=-1).min(0).values < 0.25).sum())


def test_reviving_dead_values_lets_z_learn_every_outcome():
    # measured: plain relaxed winner-take-all leaves values at the mean and learns 4 of the 8 moves; revived, 8
    assert train_ring(0.0) <= 6
    assert train_ring(0.03) == 8


def test_revive_copies_the_most_used_value_and_splits_its_prior_mass():
    torch.manual_seed(0)
    pred = Predictor(PredictorConfig(hidden=16, latent="discrete", latent_dim=4), 3, 2)
    s, a = torch.randn(10, 3), torch.randn(10, 2)
    first, before = pred.net[0].weight, pred.net[0].weight.detach().clone()
    p0 = torch.softmax(pred.latent.prior_params(s, a), -1).detach()
    # value 0 is the most used, value 2 the next; values 1 and 3 won less than 5 %
    assert pred.latent.revive(pred, torch.tensor([50.0, 0.0, 30.0, 1.0]), 0.05, torch.Generator().manual_seed(0)) == [1, 3]
    for dead, src in ((1, 0), (3, 2)):
        diff = first[:, 5 + dead] - before[:, 5 + src]
        assert 0 < diff.abs().max() < 0.5 * before[:, 5 + src].std()  # a perturbed copy
    torch.testing.assert_close(first[:, :5], before[:, :5], rtol=0, atol=0)  # states and actions untouched
    p1 = torch.softmax(pred.latent.prior_params(s, a), -1).detach()
    # each copy takes half of its source's mass: the pairs keep the sources' odds, and the dead values' own mass
    # is gone
    torch.testing.assert_close(p1[:, 0], p1[:, 1])
    torch.testing.assert_close(p1[:, 2], p1[:, 3])
    torch.testing.assert_close((p1[:, 0] + p1[:, 1]) / (p1[:, 2] + p1[:, 3]), p0[:, 0] / p0[:, 2])
    assert pred.latent.revive(pred, torch.tensor([5.0, 5.0, 5.0, 5.0]), 0.05, torch.Generator()) == []
