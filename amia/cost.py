"""Cost module (Sec. 3.2): ``C(s) = sum_i u_i IC_i(s) + sum_j v_j TC_j(s)``.

Intrinsic terms are immutable: plain functions of the states and fixed data (a goal state), with no
parameters that any optimiser could change. Every term maps predicted states ``(..., T, D)`` to one energy
per trajectory ``(...)``; leading dimensions (episodes, candidates) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def horizon_weights(steps: int, final_weight: float, device=None) -> torch.Tensor:
    """Per-step weights ``(T,)``: 1 on every step, ``final_weight`` on the last (goal energy weighted to the end)."""
    w = torch.ones(steps, device=device)
    w[-1] = final_weight
    return w / w.sum()


@dataclass(frozen=True)
class GoalDistance:
    """``IC_goal``: squared distance in representation space between predicted states and the goal's state.

    ``goal`` is ``(B, D)``; states are ``(B, ..., T, D)``. The energy is a weighted mean over the horizon,
    with ``final_weight`` on the last step (the summed form of Sec. 3.1.2, weighted toward the end).
    """

    goal: torch.Tensor
    final_weight: float = 10.0

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        g = self.goal.reshape(self.goal.shape[0], *([1] * (states.dim() - 2)), self.goal.shape[-1])
        per_step = (states - g).pow(2).mean(-1)  # (B, ..., T)
        return (per_step * horizon_weights(states.shape[-2], self.final_weight, states.device)).sum(-1)


@dataclass(frozen=True)
class Cost:
    """Weighted sum of cost terms: ``terms`` maps a name to ``(weight, term)``."""

    terms: dict

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        return sum(w * term(states) for w, term in self.terms.values())
