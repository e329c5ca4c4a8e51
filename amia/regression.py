"""The supervised loop that fits the policy to Mode-2's actions and the critic to observed costs (Sec. 3.1.3, 3.3)."""

from __future__ import annotations

import torch
from torch import nn


def fit_regression(module: nn.Module, inputs: tuple[torch.Tensor, ...], targets: torch.Tensor, steps: int,
                   batch_size: int, lr: float, seed: int = 0, progress=None) -> list[float]:
    """Minimise ``|module(*inputs[idx]) - targets[idx]|^2`` over random mini-batches with Adam and a cosine
    schedule; returns the loss of every step. All tensors share their first size ``N``."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    n = targets.shape[0]
    losses = []
    module.train()
    for _ in range(steps):
        idx = torch.randint(n, (min(batch_size, n),), generator=g)
        loss = (module(*(x[idx] for x in inputs)) - targets[idx]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if progress is not None:
            progress(1)
    module.eval()
    return losses
