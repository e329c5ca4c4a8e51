"""Multi-process training under ``torchrun`` (DDP): set-up and a gather that carries gradients."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_env(device: str) -> bool:
    """Join the process group that ``torchrun`` describes (gloo on CPU, nccl on GPU); False when not launched so."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return True


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad.chunk(dist.get_world_size(), dim=0)[dist.get_rank()]


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0, keeping gradients to the local part.

    Each process computes the same batch statistic on the gathered tensor; the backward sums the copies'
    gradients, so after DDP averages parameter gradients the result is the gradient of that statistic on the
    whole batch (the same as one process with the concatenated batch).
    """
    return _GatherWithGrad.apply(x) if is_distributed() else x
