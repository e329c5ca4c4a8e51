"""The critic network (Sec. 3.3): ``TC(s, g) >= 0``, the intrinsic cost still to come from state ``s`` under the
task context ``g`` (the goal's state). One network serves both levels of the H-JEPA; how it learns is in
``amia.training.critics``."""

from __future__ import annotations

import torch
from torch import nn

from amia.models.layers import mlp


class Critic(nn.Module):
    """An MLP of ``[s, g]`` with a softplus output, since intrinsic costs are never negative.

    ``s (..., state_dim)``; ``g (..., context_dim)`` broadcasts over the leading dimensions of ``s``.
    """

    def __init__(self, state_dim: int, context_dim: int | None = None, hidden: int = 256, layers: int = 3):
        super().__init__()
        self.state_dim = state_dim
        self.context_dim = state_dim if context_dim is None else context_dim
        self.net = mlp([state_dim + self.context_dim] + [hidden] * layers + [1])

    def forward(self, s: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        context = context.expand(*s.shape[:-1], context.shape[-1])
        return nn.functional.softplus(self.net(torch.cat([s, context], dim=-1))).squeeze(-1)


class LevelOneView(nn.Module):
    """A level-2 critic read from level-1 states: ``TC(Enc2(s1), Enc2(goal s1))``, with the interface of a level-1
    critic, so flat Mode-2 can score the end of its horizon with level 2's knowledge."""

    def __init__(self, critic: Critic, level2):
        super().__init__()
        self.critic, self.level2 = critic, level2
        self.state_dim = level2.level1_dim

    def forward(self, s1: torch.Tensor, goal1: torch.Tensor) -> torch.Tensor:
        return self.critic(self.level2.encode_state(s1), self.level2.encode_state(goal1))


__all__ = ["Critic", "LevelOneView"]
