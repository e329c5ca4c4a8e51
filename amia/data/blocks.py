"""The level-2 data pipeline of the H-JEPA (Sec. 4.6): level-1 windows cut into stride blocks.

Level 2 sees level 1 every ``k`` steps. Small pure functions with documented shapes; the level-1 states they
cut come from ``amia.data.encode`` (every frame encoded once). The pooling choices (``first`` / ``mean``) are
described in ``amia.models.level2``.
"""

from __future__ import annotations

import torch

POOLS = ("first", "mean")


def pool_span(stride: int, pool: str) -> int:
    """How many level-1 frames one level-2 state pools: 1 for ``first``, ``stride`` for ``mean``."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    return 1 if pool == "first" else stride


def stride_blocks(states: torch.Tensor, k: int, pool: str = "first") -> torch.Tensor:
    """Split level-1 states ``(B, M*k + span, D)`` into the blocks of M+1 level-2 steps, ``(B, M+1, span, D)``.

    Block ``j`` is frames ``j*k .. j*k + span - 1``: the single frame ``j*k`` for ``first`` (span 1, input
    ``(B, M*k+1, D)``), the k frames ending at ``j*k + k - 1`` for ``mean`` (span k, input ``(B, (M+1)*k, D)``,
    whose first k-1 frames are history). Either way block ``j`` ends at "time" ``j*k`` after the window's
    time 0 (frame ``span - 1``).
    """
    span = pool_span(k, pool)
    if states.dim() != 3 or states.shape[1] < span or (states.shape[1] - span) % k:
        raise ValueError(f"states should have shape (B, M*{k} + {span}, D) for stride {k} and pool {pool!r}, "
                         f"got {tuple(states.shape)}")
    m = (states.shape[1] - span) // k
    idx = (torch.arange(m + 1) * k)[:, None] + torch.arange(span)[None, :]  # (M+1, span)
    return states[:, idx.to(states.device)]


def action_blocks(actions: torch.Tensor, k: int) -> torch.Tensor:
    """The k low-level actions of each level-2 step, flattened in time order: ``(B, M*k, A) -> (B, M, k*A)``."""
    if actions.dim() != 3 or actions.shape[1] % k or actions.shape[1] == 0:
        raise ValueError(f"actions should have shape (B, M*{k}, A) with M >= 1, got {tuple(actions.shape)}")
    b, t, a = actions.shape
    return actions.reshape(b, t // k, k * a)


__all__ = ["POOLS", "action_blocks", "pool_span", "stride_blocks"]
