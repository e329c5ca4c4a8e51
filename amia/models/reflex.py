"""The reflex: Mode-1 compiled down to the pixels (Sec. 3.1.1, 3.1.3), ``a = R(frame, goal)``.

Mode-1 is already one forward pass, but of two networks: perception (a ConvNet on the whole frame) and the policy.
Sec. 3.1.3 describes tasks that practice turns from deliberate into "subconscious"; the reflex is that last step for
a skill the policy has mastered: a small network that reads the frame average-pooled by ``pool`` (``(C, H/pool,
W/pool)``, enough to locate a blurred point to a fraction of a pixel) and the goal's state (perceived once per
episode by the full encoder), fitted by ``amia.training.reflex`` to imitate the run's policy on the states the reflex
itself visits. At batch size 1 its forward pass runs in numpy (``ReflexKernel``: three small matrix products and
two pooling ones) in tens of microseconds, where a PyTorch call costs about that much per operation.

``h = relu(W_see pool(frame) + W_goal goal + b)``; ``h = relu(W_mid h + b)``; ``a = bound tanh(W_out h + b)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from amia.infra.validate import at_least


@dataclass
class ReflexConfig:
    """``pool``: the frame's average-pooling factor (it must divide the frame's size); ``hidden``: the width of the
    two hidden layers."""

    pool: int = 4
    hidden: int = 256

    def __post_init__(self):
        at_least(self, 1, "pool", "hidden")


class Reflex(nn.Module):
    """``R(frames uint8 (B, C, H, W), goal states (B, D)) -> actions (B, A)`` in ``[-bound, bound]``."""

    def __init__(self, cfg: ReflexConfig, frame_shape: tuple[int, int, int], context_dim: int, action_dim: int,
                 bound: float):
        super().__init__()
        c, h, w = frame_shape
        if h % cfg.pool or w % cfg.pool:
            raise ValueError(f"reflex.pool={cfg.pool} must divide the frame's size {h}x{w}")
        self.cfg, self.frame_shape, self.context_dim, self.action_dim = cfg, (c, h, w), context_dim, action_dim
        self.bound = bound
        self.see = nn.Linear(c * (h // cfg.pool) * (w // cfg.pool), cfg.hidden)
        self.goal = nn.Linear(context_dim, cfg.hidden, bias=False)
        self.mid = nn.Linear(cfg.hidden, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, action_dim)

    def pooled(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8 (B, C, H, W)`` -> the network's pixel input ``(B, C * H/pool * W/pool)`` in ``[0, 1]``."""
        return F.avg_pool2d(frames.float() / 255, self.cfg.pool).flatten(1)

    def from_pooled(self, pixels: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.see(pixels) + self.goal(context))
        return self.bound * torch.tanh(self.out(F.relu(self.mid(h))))

    def forward(self, frames: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.from_pooled(self.pooled(frames), context)

    def kernel(self) -> ReflexKernel:
        """The same function in numpy, for fast calls at small batch."""
        return ReflexKernel(self)


class ReflexKernel:
    """A ``Reflex``'s forward pass in float32 numpy. ``context(goal)`` once per episode, then ``act(frames, g)``
    per step."""

    def __init__(self, reflex: Reflex):
        c, h, w = reflex.frame_shape
        p = reflex.cfg.pool
        get = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        # pooling as two 2-D matrix products: columns of every (channel, row), then rows within each channel
        self.rows = np.kron(np.eye(c * h // p, dtype=np.float32), np.full((1, p), 1 / (p * p * 255), np.float32))
        self.cols = np.kron(np.eye(w // p, dtype=np.float32), np.ones((p, 1), np.float32))
        self.shape = (c * h, w)
        self.w_see, self.b_see = get(reflex.see.weight).T.copy(), get(reflex.see.bias)
        self.w_goal = get(reflex.goal.weight).T.copy()
        self.w_mid, self.b_mid = get(reflex.mid.weight).T.copy(), get(reflex.mid.bias)
        self.w_out, self.b_out = get(reflex.out.weight).T.copy(), get(reflex.out.bias)
        self.bound = np.float32(reflex.bound)

    def context(self, goal: np.ndarray) -> np.ndarray:
        """Goal states ``(B, D)`` -> their share of the first layer ``(B, hidden)`` (its bias included)."""
        return goal.astype(np.float32) @ self.w_goal + self.b_see

    def act(self, frames: np.ndarray, context: np.ndarray) -> np.ndarray:
        """``uint8 (B, C, H, W)`` frames and ``context(goal)`` -> actions ``(B, A)``."""
        b = frames.shape[0]
        x = frames.reshape(b * self.shape[0], self.shape[1]).astype(np.float32) @ self.cols  # (B C H, W/p)
        pixels = (self.rows @ x.reshape(b, self.shape[0], -1)).reshape(b, -1) if b > 1 else (self.rows @ x).reshape(1, -1)
        h = np.maximum(pixels @ self.w_see + context, 0)
        h = np.maximum(h @ self.w_mid + self.b_mid, 0)
        return self.bound * np.tanh(h @ self.w_out + self.b_out)


__all__ = ["Reflex", "ReflexConfig", "ReflexKernel"]
