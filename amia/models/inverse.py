"""Inverse-dynamics models that read the action taken between frames, with how sure they are of it.

Used by ``amia label`` to give frames without actions the actions a few labelled episodes teach (the second way of
``docs/video.md``). Both models see a window of ``2c + 2`` frames around the transition they label (``c`` of context
on each side) and return the action normalised to [-1, 1] and the log standard deviation of their error: a push
that a wall stopped shows no move, its action is not in the frames, and the model says so by a large spread.

- ``StateInverse`` reads the states of a pretrained encoder (and the latent actions a model trained on frames
  alone inferred there).
- ``KeypointInverse`` reads the pixels themselves through a small convolutional net whose last maps become
  keypoints by a spatial soft-argmax (the expected position of each map's softmax): what moved is read to a
  fraction of a pixel, and the head sees each keypoint's move from frame to frame.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from amia.models.layers import mlp


class Reading(NamedTuple):
    """What an inverse model reads of ``B`` transitions: the action's ``mean (B, A)`` in [-1, 1], the ``log_std
    (B, A)`` of its error, and ``logits (B, A, bins)`` of each action dimension over ``bins`` equal bins of [-1, 1]
    (empty with no bins): where the frames say little, a distribution to draw an action from, not only its mean."""

    mean: torch.Tensor
    log_std: torch.Tensor
    logits: torch.Tensor


def read_head(out: torch.Tensor, action_dim: int, bins: int) -> Reading:
    """The head's ``(B, (2 + bins) A)`` outputs as a ``Reading``."""
    a = action_dim
    return Reading(torch.tanh(out[:, :a]), out[:, a:2 * a].clamp(-7, 3), out[:, 2 * a:].reshape(len(out), a, bins))


def action_bin(x: torch.Tensor, bins: int) -> torch.Tensor:
    """The bin (of ``bins`` equal bins of [-1, 1]) of each normalised action value."""
    return ((x.clamp(-1, 1) + 1) / 2 * bins).long().clamp(max=bins - 1)


def draw_actions(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One action ``(B, A)`` drawn from ``logits (B, A, bins)``: a bin for each dimension, then uniformly in it."""
    b, a, bins = logits.shape
    pick = torch.multinomial(logits.reshape(b * a, bins).softmax(-1), 1, generator=generator).view(b, a)
    return -1 + (pick + torch.rand(b, a, generator=generator)) * 2 / bins


class StateInverse(nn.Module):
    """Actions from the states ``(B, 2c+2, D)`` and latent actions ``(B, 2c+1, k)`` around a transition."""

    def __init__(self, state_dim: int, latent_dim: int, action_dim: int, context: int, hidden: int, bins: int = 0):
        super().__init__()
        width = (2 * context + 2) * state_dim + (2 * context + 1) * latent_dim
        self.action_dim, self.bins = action_dim, bins
        self.net = mlp([width, hidden, hidden, (2 + bins) * action_dim])

    def forward(self, states: torch.Tensor, latents: torch.Tensor) -> Reading:
        out = self.net(torch.cat([states.flatten(1), latents.flatten(1)], dim=1))
        return read_head(out, self.action_dim, self.bins)


class KeypointInverse(nn.Module):
    """Actions from the pixels of ``2c + 2`` frames: ``keypoints`` of each frame, then an MLP on the keypoints of
    the labelled transition's first frame and every keypoint's move along the window."""

    def __init__(self, channels: int, action_dim: int, context: int, keypoints: int = 16, width: int = 32,
                 hidden: int = 256, bins: int = 0):
        super().__init__()
        self.action_dim, self.context, self.bins = action_dim, context, bins
        self.conv = nn.Sequential(nn.Conv2d(channels, width, 5, 2, 2), nn.GELU(), nn.Conv2d(width, width, 3, 1, 1),
                                  nn.GELU(), nn.Conv2d(width, keypoints, 3, 1, 1))
        self.head = mlp([2 * keypoints * (2 * context + 2), hidden, hidden, (2 + bins) * action_dim])

    def keypoints(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8 (N, C, H, W)`` -> ``(N, 2K)``: each map's soft-argmax ``(x, y)`` in [-1, 1]."""
        maps = self.conv(frames.float() / 255)
        n, k, h, w = maps.shape
        p = maps.flatten(2).softmax(-1).view(n, k, h, w)
        xs = torch.linspace(-1, 1, w, device=maps.device)
        ys = torch.linspace(-1, 1, h, device=maps.device)
        return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], dim=-1).flatten(1)

    def forward(self, states: torch.Tensor, latents: torch.Tensor | None = None) -> Reading:
        """``states (B, 2c+2, 2K)`` are keypoints (``keypoints`` of each frame); ``latents`` are not read."""
        first = states[:, self.context]
        moves = (states[:, 1:] - states[:, :-1]) * 10  # a step is a few hundredths of the [-1, 1] frame
        return read_head(self.head(torch.cat([first, moves.flatten(1)], dim=1)), self.action_dim, self.bins)

    def read(self, frames: torch.Tensor) -> Reading:
        """``uint8 (B, 2c+2, C, H, W)``, end to end from the pixels."""
        b, w = frames.shape[:2]
        return self(self.keypoints(frames.flatten(0, 1)).view(b, w, -1))


def inverse_loss(reading: Reading, target: torch.Tensor) -> torch.Tensor:
    """The mean's squared error, plus the Gaussian likelihood of the error under ``log_std`` with the mean held
    fixed: the spread learns how far off the mean is, without pulling the mean toward the easy cases; with bins,
    plus the cross-entropy of the target's bins."""
    err2 = (target - reading.mean).pow(2)
    nll = 0.5 * err2.detach() * torch.exp(-2 * reading.log_std) + reading.log_std
    loss = err2.mean() + nll.mean()
    bins = reading.logits.shape[-1]
    if bins:
        loss = loss + nn.functional.cross_entropy(reading.logits.flatten(0, 1), action_bin(target, bins).flatten())
    return loss


__all__ = ["KeypointInverse", "Reading", "StateInverse", "action_bin", "draw_actions", "inverse_loss"]
