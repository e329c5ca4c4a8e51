"""The one in-memory fitting loop: Adam with a cosine learning-rate schedule over a fixed number of steps, for the
small learned modules that fit on tensors already in memory (the policy, the critic from memory, the refined
predictor; Sec. 3.1.1, 3.1.3, 3.3)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def minimise(module: nn.Module, batch_loss: Callable[[torch.Generator], torch.Tensor], steps: int, lr: float,
             seed: int = 0, progress=None, after_step: Callable[[], None] | None = None) -> list[float]:
    """Minimise ``batch_loss(generator)`` (which draws its own mini-batch from the seeded generator) over the
    trainable parameters of ``module`` with Adam, the learning rate falling from ``lr`` to 0 on a cosine;
    ``after_step`` runs after every update (e.g. a target network following). Returns every step's loss."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    module.train()
    for _ in range(steps):
        loss = batch_loss(g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if after_step is not None:
            after_step()
        losses.append(loss.item())
        if progress is not None:
            progress(1)
    module.eval()
    return losses


def fit_regression(module: nn.Module, inputs: tuple[torch.Tensor, ...], targets: torch.Tensor, steps: int,
                   batch_size: int, lr: float, seed: int = 0, progress=None) -> list[float]:
    """Minimise ``|module(*inputs[idx]) - targets[idx]|^2`` over random mini-batches (``minimise``); all tensors
    share their first size ``N``. Returns every step's loss."""
    n = targets.shape[0]

    def batch_loss(g: torch.Generator) -> torch.Tensor:
        idx = torch.randint(n, (min(batch_size, n),), generator=g)
        return (module(*(x[idx] for x in inputs)) - targets[idx]).pow(2).mean()

    return minimise(module, batch_loss, steps, lr, seed, progress)


__all__ = ["fit_regression", "minimise"]
