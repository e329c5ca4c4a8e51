"""Mode-2 optimisers (Sec. 3.1.2, Sec. 5): find the action sequence that minimises the predicted cost.

Every planner is a function of a differentiable ``rollout(s0, actions) -> states`` and a
``cost(states) -> energy``, and nothing else, so planners, world models and costs combine freely.
Shapes: ``s0 (B, D)``; plans ``(B, T, A)``; internally ``N`` candidates per episode are rolled out as
``(B * N, T, A)`` and the cost sees states ``(B, N, T, D)`` and returns ``(B, N)``.
Actions stay inside the box ``[-bound, bound]`` (clipping for the samplers, projection after each step for
gradient descent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from amia.infra.validate import at_least, positive, within

Rollout = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CostFn = Callable[[torch.Tensor], torch.Tensor]
PLANNERS = ("gd", "cem", "mppi", "hybrid")


@dataclass
class PlannerConfig:
    """Settings of every planner (each uses the fields it needs).

    ``iterations`` is the number of optimisation steps of a cold start; a warm-started re-plan uses
    ``warm_iterations``, and one that starts from the distilled policy's proposal ``policy_iterations`` with
    ``policy_restarts`` gradient starts (0 iterations: the proposals and the random starts are scored by their
    energy and the best is kept, one roll-out in all).
    ``samples`` candidates per iteration for CEM / MPPI (``elites`` of them for CEM); ``temperature`` of MPPI is
    in units of the energy spread of the ``elites`` best candidates. Exploration noise (and the random restarts of
    gradient descent) is drawn at one knot every ``knot_every`` steps and interpolated linearly in between: smooth
    sequences travel far, where per-step noise only jitters in place. ``explore_fraction`` of the sampling
    candidates are drawn uniformly in the box rather than around the mean, so a re-plan can still leave a local
    minimum (a wall between agent and goal). ``populations`` splits the samplers' candidates into that many
    independent Gaussians (the first around the warm start, the others around smooth random sequences), the
    sampling counterpart of gradient restarts: a population that finds the door converges there without being
    averaged away by the others. ``effort`` weights an intrinsic cost on the mean squared action (in units of the
    bound), the paper's energy expenditure: it breaks ties toward staying still once the goal is reached.
    ``restarts`` parallel starts and Adam step ``lr`` (in units of the bound) for gradient descent. ``refine``
    gradient steps after sampling (hybrid).
    """

    horizon: int = 32
    iterations: int = 10
    warm_iterations: int = 4
    policy_iterations: int = 0
    policy_restarts: int = 4
    samples: int = 128
    elites: int = 12
    temperature: float = 0.3
    init_std: float = 0.6
    min_std: float = 0.05
    restarts: int = 16
    lr: float = 0.3
    refine: int = 5
    knot_every: int = 4
    explore_fraction: float = 0.25
    populations: int = 8
    effort: float = 0.0

    def __post_init__(self):
        at_least(self, 1, "horizon", "iterations", "samples", "elites", "restarts", "policy_restarts", "knot_every",
                 "populations")
        at_least(self, 0, "warm_iterations", "policy_iterations", "refine", "min_std", "effort")
        positive(self, "temperature", "init_std", "lr")
        within(self, "explore_fraction", 0, 1)


@dataclass
class Plan:
    actions: torch.Tensor  # (B, T, A)
    energy: torch.Tensor  # (B,)


def trajectory_energy(rollout: Rollout, cost: CostFn, s0: torch.Tensor, effort: float = 0.0,
                      bound: float = 1.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """``energy(actions (B, N, T, A)) -> (B, N)``: roll every candidate out from its episode's ``s0`` and cost it
    (plus ``effort`` times the mean squared action in units of ``bound``)."""

    def energy(actions: torch.Tensor) -> torch.Tensor:
        b, n = actions.shape[:2]
        states = rollout(s0.repeat_interleave(n, dim=0), actions.flatten(0, 1))
        e = cost(states.reshape(b, n, *states.shape[1:]))
        return e + effort * (actions / bound).pow(2).mean(dim=(-2, -1)) if effort else e

    return energy


def _best(actions: torch.Tensor, energy: torch.Tensor) -> Plan:
    idx = energy.argmin(dim=1)
    ar = torch.arange(actions.shape[0], device=actions.device)
    return Plan(actions[ar, idx].detach(), energy[ar, idx].detach())


def gradient_plan(rollout: Rollout, cost: CostFn, s0: torch.Tensor, init: torch.Tensor, bound: float,
                  cfg: PlannerConfig, iterations: int, generator: torch.Generator | None = None) -> Plan:
    """Adam on the action sequence through the unrolled predictor, from ``restarts`` parallel starts.

    The first starts are ``init`` (the warm start ``(B, T, A)``, or ``K`` proposals ``(B, K, T, A)``); the others
    are uniform in the action box. After every step the
    actions are projected back into the box (so optima on the boundary are reached exactly); ``lr`` is in
    units of ``bound`` and decays linearly to a tenth over the iterations; the best iterate is returned (so
    the warm start survives unless something better is found).
    """
    energy = trajectory_energy(rollout, cost, s0, cfg.effort, bound)
    init = proposals(init)
    b, k, t, a = init.shape
    rand = smooth_noise((b, max(0, cfg.restarts - k), t, a), cfg.knot_every, generator, init.device, uniform=True) * bound
    actions = torch.cat([init, rand], dim=1).clamp(-bound, bound).requires_grad_(True)
    opt = torch.optim.Adam([actions], lr=cfg.lr * bound)
    best = None
    with torch.enable_grad():
        for i in range(iterations):
            for group in opt.param_groups:  # Adam's steps do not shrink with the gradient: decay them
                group["lr"] = cfg.lr * bound * (1 - 0.9 * i / max(1, iterations - 1))
            e = energy(actions)
            best = _merge(best, _best(actions.detach(), e.detach()))
            opt.zero_grad(set_to_none=True)
            e.sum().backward()
            opt.step()
            with torch.no_grad():
                actions.clamp_(-bound, bound)
    with torch.no_grad():
        return _merge(best, _best(actions.detach(), energy(actions)))


def proposals(init: torch.Tensor) -> torch.Tensor:
    """Initial plans as ``(B, K, T, A)``: one warm start ``(B, T, A)`` is ``K = 1`` proposal."""
    if init.dim() not in (3, 4):
        raise ValueError(f"initial plans should have shape (B, T, A) or (B, K, T, A), got {tuple(init.shape)}")
    return init[:, None] if init.dim() == 3 else init


def smooth_noise(shape: tuple, knot_every: int, generator, device, uniform: bool = False) -> torch.Tensor:
    """Noise ``(..., T, A)`` drawn at one knot every ``knot_every`` steps (Gaussian, or uniform in [-1, 1])
    and linearly interpolated along T."""
    *lead, t, a = shape
    knots = -(-(t - 1) // knot_every) + 1
    size = (*lead, knots, a)
    raw = (torch.rand(size, generator=generator, device=device) * 2 - 1 if uniform
           else torch.randn(size, generator=generator, device=device))
    if knots == t:
        return raw
    pos = torch.arange(t, device=device, dtype=raw.dtype) / knot_every
    lo = pos.floor().long().clamp(max=knots - 2)
    frac = (pos - lo)[:, None]
    return raw[..., lo, :] * (1 - frac) + raw[..., lo + 1, :] * frac


def _sample(mean: torch.Tensor, std: torch.Tensor, bound: float, cfg: PlannerConfig, generator) -> torch.Tensor:
    n = cfg.samples
    noise = smooth_noise((mean.shape[0], n, *mean.shape[1:]), cfg.knot_every, generator, mean.device)
    cand = (mean[:, None] + std[:, None] * noise).clamp(-bound, bound)
    far = int(cfg.explore_fraction * n)
    if far:
        shape = (mean.shape[0], far, *mean.shape[1:])
        cand[:, n - far:] = smooth_noise(shape, cfg.knot_every, generator, mean.device, uniform=True) * bound
    cand[:, 0] = mean  # the current mean is always a candidate
    return cand


def _sampling_plan(rollout: Rollout, cost: CostFn, s0: torch.Tensor, init: torch.Tensor, bound: float,
                   cfg: PlannerConfig, iterations: int, generator, refit) -> Plan:
    """The loop that CEM and MPPI share: sample around (mean, std), cost, ``refit`` the Gaussian, keep the best.

    With ``populations`` P > 1 every episode runs P independent loops of ``samples // P`` candidates (as a
    batch of B * P), started from the ``K`` proposals in ``init`` and P - K smooth random sequences; the best
    plan wins. With one population, it starts from the first proposal.
    """
    init = proposals(init)
    p = max(1, cfg.populations)
    if p == 1:
        init = init[:, 0]
    else:
        b, k, t, a = init.shape
        starts = smooth_noise((b, max(0, p - k), t, a), cfg.knot_every, generator, init.device, uniform=True) * bound
        init = torch.cat([init, starts], dim=1)[:, :p].flatten(0, 1)
        s0 = s0.repeat_interleave(p, dim=0)
        cost = _repeat_cost(cost, p)
        n = max(2, cfg.samples // p)  # at least two candidates per population
        cfg = PlannerConfig(**{**cfg.__dict__, "samples": n, "elites": min(n, max(2, cfg.elites // p))})
    energy = trajectory_energy(rollout, cost, s0, cfg.effort, bound)
    mean, std = init.clone(), torch.full_like(init, cfg.init_std * bound)
    best = None
    for _ in range(iterations):
        cand = _sample(mean, std, bound, cfg, generator)
        e = energy(cand)
        mean, std = refit(cand, e, cfg)
        std = std.clamp_min(cfg.min_std * bound)
        best = _merge(best, _best(cand, e))
    if best is None:  # no iteration: the starting plans, scored
        best = _best(mean[:, None], energy(mean[:, None]))
    if p > 1:
        best = _best(best.actions.unflatten(0, (-1, p)), best.energy.unflatten(0, (-1, p)))
    return best


def _repeat_cost(cost: CostFn, p: int) -> CostFn:
    """The cost of B episodes seen as B * p episodes (episode i's populations are rows i*p .. i*p+p-1)."""

    def repeated(states: torch.Tensor) -> torch.Tensor:
        e = cost(states.unflatten(0, (-1, p)).transpose(1, 2).flatten(1, 2))  # (B, N * p) candidates per episode
        return e.unflatten(1, (-1, p)).transpose(1, 2).flatten(0, 1)

    return repeated


def _elite_refit(cand: torch.Tensor, e: torch.Tensor, cfg: PlannerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    idx = e.topk(cfg.elites, dim=1, largest=False).indices
    elite = torch.gather(cand, 1, idx[:, :, None, None].expand(-1, -1, *cand.shape[2:]))
    return elite.mean(1), elite.std(1)


def _path_integral_refit(cand: torch.Tensor, e: torch.Tensor, cfg: PlannerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    low = e.topk(cfg.elites, dim=1, largest=False).values  # spread of the best: robust to far outliers
    spread = (low[:, -1:] - low[:, :1]).clamp_min(1e-8)
    w = torch.softmax(-(e - low[:, :1]) / (cfg.temperature * spread), dim=1)[:, :, None, None]
    mean = (w * cand).sum(1)
    return mean, (w * (cand - mean[:, None]).pow(2)).sum(1).sqrt()


@torch.no_grad()
def cem_plan(rollout: Rollout, cost: CostFn, s0: torch.Tensor, init: torch.Tensor, bound: float,
             cfg: PlannerConfig, iterations: int, generator: torch.Generator | None = None) -> Plan:
    """Cross-entropy method: refit a diagonal Gaussian to the ``elites`` lowest-energy candidates."""
    return _sampling_plan(rollout, cost, s0, init, bound, cfg, iterations, generator, _elite_refit)


@torch.no_grad()
def mppi_plan(rollout: Rollout, cost: CostFn, s0: torch.Tensor, init: torch.Tensor, bound: float,
              cfg: PlannerConfig, iterations: int, generator: torch.Generator | None = None) -> Plan:
    """Model-predictive path integral: the mean moves to the softmax(-energy / temperature)-weighted candidates."""
    return _sampling_plan(rollout, cost, s0, init, bound, cfg, iterations, generator, _path_integral_refit)


def hybrid_plan(rollout: Rollout, cost: CostFn, s0: torch.Tensor, init: torch.Tensor, bound: float,
                cfg: PlannerConfig, iterations: int, generator: torch.Generator | None = None) -> Plan:
    """Sampling finds the basin (MPPI), then ``refine`` gradient steps polish the best sequence."""
    coarse = mppi_plan(rollout, cost, s0, init, bound, cfg, iterations, generator)
    fine_cfg = PlannerConfig(**{**cfg.__dict__, "restarts": 1, "lr": cfg.lr / 3})
    fine = gradient_plan(rollout, cost, s0, coarse.actions, bound, fine_cfg, cfg.refine, generator)
    return _merge(coarse, fine)


def _merge(a: Plan | None, b: Plan) -> Plan:
    if a is None:
        return b
    better = b.energy < a.energy
    return Plan(torch.where(better[:, None, None], b.actions, a.actions), torch.minimum(a.energy, b.energy))


PLANNER_FUNCTIONS = {"gd": gradient_plan, "cem": cem_plan, "mppi": mppi_plan, "hybrid": hybrid_plan}


def plan(name: str, rollout: Rollout, cost: CostFn, s0: torch.Tensor, init: torch.Tensor, bound: float,
         cfg: PlannerConfig, warm: bool = False, generator: torch.Generator | None = None) -> Plan:
    """Run planner ``name`` (gd, cem, mppi, hybrid) with the cold or warm iteration budget."""
    if name not in PLANNER_FUNCTIONS:
        raise ValueError(f"unknown planner {name!r}; known: {', '.join(PLANNERS)}")
    iterations = cfg.warm_iterations if warm else cfg.iterations
    return PLANNER_FUNCTIONS[name](rollout, cost, s0, init, bound, cfg, iterations, generator)


def shift(actions: torch.Tensor, k: int) -> torch.Tensor:
    """Warm start for the next re-plan: drop the ``k`` executed actions, pad the end with zeros."""
    return torch.cat([actions[:, k:], torch.zeros_like(actions[:, :k])], dim=1)
