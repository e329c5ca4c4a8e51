"""The loops that fit the agent's small learned modules: the policy to Mode-2's actions or energy and the critic
to observed costs (Sec. 3.1.3, 3.3)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def minimise(module: nn.Module, batch_loss: Callable[[torch.Generator], torch.Tensor], steps: int, lr: float,
             seed: int = 0, progress=None) -> list[float]:
    """Minimise ``batch_loss(generator)`` (which draws its own mini-batch from the seeded generator) over the
    parameters of ``module`` with Adam and a cosine schedule; returns the loss of every step."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    module.train()
    for _ in range(steps):
        loss = batch_loss(g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if progress is not None:
            progress(1)
    module.eval()
    return losses


def fit_regression(module: nn.Module, inputs: tuple[torch.Tensor, ...], targets: torch.Tensor, steps: int,
                   batch_size: int, lr: float, seed: int = 0, progress=None) -> list[float]:
    """Minimise ``|module(*inputs[idx]) - targets[idx]|^2`` over random mini-batches with Adam and a cosine
    schedule; returns the loss of every step. All tensors share their first size ``N``."""
    n = targets.shape[0]

    def batch_loss(g: torch.Generator) -> torch.Tensor:
        idx = torch.randint(n, (min(batch_size, n),), generator=g)
        return (module(*(x[idx] for x in inputs)) - targets[idx]).pow(2).mean()

    return minimise(module, batch_loss, steps, lr, seed, progress)
