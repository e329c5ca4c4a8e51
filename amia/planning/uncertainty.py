"""Planning under uncertainty (Sec. 4.8, 5): the cost of a plan over several futures of a latent-variable model.

A plan is rolled out ``futures`` times with latents drawn from the prior ``p(z | s, a)`` (so futures come with their
frequencies), and the costs of those futures combine by a risk measure:

- ``expected``: their mean;
- ``mean_std``: mean plus ``std_weight`` standard deviations (risk-averse);
- ``cvar``: the mean of the worst ``cvar_fraction`` of them (conditional value at risk; risk-averse);
- ``adversarial``: one future in which, at every step, the latent is the one that maximises the cost of the next
  state (Sec. 5: actions minimise, latents maximise, the two treated alike); a discrete latent tries all its
  values, a continuous one ``candidates`` prior samples.

Any planner takes the result: it sees a ``rollout`` and a ``cost`` as usual (``amia.planning.planners``), the
rollout returning ``(M, K, T, D)`` and the cost combining the ``K`` futures into one energy per plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from amia.infra.validate import at_least, one_of, positive, within
from amia.models.predictor import Predictor
from amia.planning.planners import CostFn, Rollout

RISKS = ("expected", "mean_std", "cvar", "adversarial")


@dataclass
class UncertaintyConfig:
    """How Mode-2 plans with a world model that has a latent (``jepa.predictor.latent``).

    ``futures`` sampled futures per candidate plan; 0 plans one future at the prior's most likely latent (what a
    deterministic model does). ``risk``: how the futures' costs combine (module docstring); ``adversarial`` ignores
    ``futures``. ``std_weight`` for ``mean_std``, ``cvar_fraction`` (of the futures, the worst ones) for ``cvar``,
    ``candidates`` latents tried per step by the adversary of a continuous latent.
    """

    futures: int = 0
    risk: str = "expected"
    std_weight: float = 1.0
    cvar_fraction: float = 0.2
    candidates: int = 16

    def __post_init__(self):
        at_least(self, 0, "futures")
        at_least(self, 1, "candidates")
        one_of(self, "risk", RISKS)
        positive(self, "std_weight")
        within(self, "cvar_fraction", 0, 1, open_low=True)

    @property
    def active(self) -> bool:
        return self.futures > 0 or self.risk == "adversarial"


def risk_measure(costs: torch.Tensor, risk: str, std_weight: float = 1.0, cvar_fraction: float = 0.2) -> torch.Tensor:
    """Combine the costs of ``K`` futures ``(..., K)`` into ``(...)``: ``expected`` (mean), ``mean_std`` (mean +
    ``std_weight`` x population std) or ``cvar`` (mean of the ``ceil(cvar_fraction * K)`` largest)."""
    if risk == "expected":
        return costs.mean(-1)
    if risk == "mean_std":
        return costs.mean(-1) + std_weight * costs.std(-1, unbiased=False)
    if risk == "cvar":
        worst = max(1, math.ceil(cvar_fraction * costs.shape[-1] - 1e-9))
        return costs.topk(worst, dim=-1).values.mean(-1)
    raise ValueError(f"risk measure must be one of {RISKS[:3]}, got {risk!r}")


def uncertain_planning(predictor: Predictor, cost: CostFn, cfg: UncertaintyConfig, episodes: int,
                       generator: torch.Generator | None = None) -> tuple[Rollout, CostFn]:
    """The ``(rollout, cost)`` pair a planner takes for ``episodes`` episodes under ``cfg``: the predictor's plain
    rollout and ``cost`` when ``cfg`` is off or the model has no latent. The futures' randomness is drawn once
    per plan (seeded from ``generator``), so every candidate and every iteration meets the same futures."""
    if not cfg.active or getattr(predictor, "latent", None) is None:
        return predictor.rollout, cost
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device if generator else None))

    def fixed(device) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(seed)

    if cfg.risk == "adversarial":
        def step_cost(nxt: torch.Tensor) -> torch.Tensor:  # (M, C, D): rows episode-major (planners repeat s0)
            return cost(nxt.reshape(episodes, -1, 1, nxt.shape[-1])).reshape(nxt.shape[:2])

        def adversarial(s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
            return predictor.adversarial_rollout(s0, actions, step_cost, cfg.candidates, fixed(s0.device))

        return adversarial, cost

    def sampled(s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return predictor.sample_rollout(s0, actions, cfg.futures, fixed(s0.device))

    def combined(states: torch.Tensor) -> torch.Tensor:  # (B, N, K, T, D) -> (B, N)
        return risk_measure(cost(states), cfg.risk, cfg.std_weight, cfg.cvar_fraction)

    return sampled, combined


__all__ = ["RISKS", "UncertaintyConfig", "risk_measure", "uncertain_planning"]
