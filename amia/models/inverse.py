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
- ``SequenceInverse`` reads the keypoints of whole episodes with a bidirectional GRU: a push that a wall stopped
  for many steps is read from the moves that led the agent there and away, however far they are.

Their distribution over actions is per dimension (``bins`` per dimension) or joint (``bins ** A`` cells of the
action box, logits of shape ``(B, 1, bins ** A)``): a push into a wall may have any length and any angle into it,
a set whose shape only a joint distribution holds.
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


def head_width(action_dim: int, bins: int, joint: bool) -> int:
    """Outputs of a head: mean and log spread per dimension, then the bins' logits (per dimension, or joint)."""
    return 2 * action_dim + (bins ** action_dim if joint and bins else bins * action_dim)


def read_head(out: torch.Tensor, action_dim: int, bins: int, joint: bool = False) -> Reading:
    """The head's ``(B, head_width)`` outputs as a ``Reading``."""
    a = action_dim
    logits = out[:, 2 * a:].reshape(len(out), 1, bins ** a) if joint and bins else out[:, 2 * a:].reshape(len(out), a, bins)
    return Reading(torch.tanh(out[:, :a]), out[:, a:2 * a].clamp(-7, 3), logits)


def action_bin(x: torch.Tensor, bins: int) -> torch.Tensor:
    """The bin (of ``bins`` equal bins of [-1, 1]) of each normalised action value."""
    return ((x.clamp(-1, 1) + 1) / 2 * bins).long().clamp(max=bins - 1)


def joint_bin(x: torch.Tensor, bins: int) -> torch.Tensor:
    """The cell of each normalised action ``(B, A)`` among the ``bins ** A`` of the box (dimension 0 fastest)."""
    return (action_bin(x, bins) * bins ** torch.arange(x.shape[1], device=x.device)).sum(1)


def draw_actions(logits: torch.Tensor, generator: torch.Generator, action_dim: int | None = None) -> torch.Tensor:
    """One action ``(B, A)`` drawn from ``logits``: per dimension ``(B, A, bins)``, a bin for each dimension; joint
    ``(B, 1, bins ** A)`` (``action_dim`` A), a cell of the box; then uniformly within it."""
    b, a, cells = logits.shape
    if action_dim is not None and a == 1 and action_dim > 1:
        bins = round(cells ** (1 / action_dim))
        cell = torch.multinomial(logits[:, 0].softmax(-1), 1, generator=generator)
        pick = cell // bins ** torch.arange(action_dim) % bins
        a = action_dim
    else:
        bins = cells
        pick = torch.multinomial(logits.reshape(b * a, bins).softmax(-1), 1, generator=generator).view(b, a)
    return -1 + (pick + torch.rand(b, a, generator=generator)) * 2 / bins


def soft_argmax(maps: torch.Tensor) -> torch.Tensor:
    """``(N, K, H, W)`` maps -> ``(N, 2K)``: the expected ``(x, y)`` in [-1, 1] of each map's softmax."""
    n, k, h, w = maps.shape
    p = maps.flatten(2).softmax(-1).view(n, k, h, w)
    xs = torch.linspace(-1, 1, w, device=maps.device)
    ys = torch.linspace(-1, 1, h, device=maps.device)
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], dim=-1).flatten(1)


class StateInverse(nn.Module):
    """Actions from the states ``(B, 2c+2, D)`` and latent actions ``(B, 2c+1, k)`` around a transition."""

    def __init__(self, state_dim: int, latent_dim: int, action_dim: int, context: int, hidden: int, bins: int = 0,
                 joint: bool = False):
        super().__init__()
        width = (2 * context + 2) * state_dim + (2 * context + 1) * latent_dim
        self.action_dim, self.bins, self.joint = action_dim, bins, joint
        self.net = mlp([width, hidden, hidden, head_width(action_dim, bins, joint)])

    def forward(self, states: torch.Tensor, latents: torch.Tensor) -> Reading:
        out = self.net(torch.cat([states.flatten(1), latents.flatten(1)], dim=1))
        return read_head(out, self.action_dim, self.bins, self.joint)


class KeypointInverse(nn.Module):
    """Actions from the pixels of ``2c + 2`` frames: ``keypoints`` of each frame, then an MLP on the keypoints of
    the labelled transition's first frame and every keypoint's move along the window."""

    def __init__(self, channels: int, action_dim: int, context: int, keypoints: int = 16, width: int = 32,
                 hidden: int = 256, bins: int = 0, joint: bool = False):
        super().__init__()
        self.action_dim, self.context, self.bins, self.joint = action_dim, context, bins, joint
        self.conv = nn.Sequential(nn.Conv2d(channels, width, 5, 2, 2), nn.GELU(), nn.Conv2d(width, width, 3, 1, 1),
                                  nn.GELU(), nn.Conv2d(width, keypoints, 3, 1, 1))
        self.head = mlp([2 * keypoints * (2 * context + 2), hidden, hidden, head_width(action_dim, bins, joint)])

    def keypoints(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8 (N, C, H, W)`` -> ``(N, 2K)``: each map's soft-argmax ``(x, y)`` in [-1, 1]."""
        return soft_argmax(self.conv(frames.float() / 255))

    def forward(self, states: torch.Tensor, latents: torch.Tensor | None = None) -> Reading:
        """``states (B, 2c+2, 2K)`` are keypoints (``keypoints`` of each frame); ``latents`` are not read."""
        first = states[:, self.context]
        moves = (states[:, 1:] - states[:, :-1]) * 10  # a step is a few hundredths of the [-1, 1] frame
        return read_head(self.head(torch.cat([first, moves.flatten(1)], dim=1)), self.action_dim, self.bins, self.joint)

    def read(self, frames: torch.Tensor) -> Reading:
        """``uint8 (B, 2c+2, C, H, W)``, end to end from the pixels."""
        b, w = frames.shape[:2]
        return self(self.keypoints(frames.flatten(0, 1)).view(b, w, -1))


class SequenceInverse(nn.Module):
    """Actions of every transition of whole episodes from their keypoints ``(E, T, 2K)`` (the frozen ``conv`` of a
    fitted ``KeypointInverse``): each transition's moves (and, with ``positions``, where its keypoints are),
    through a bidirectional GRU over the episode, then an MLP on its output and the transition's own inputs.
    Without ``positions`` it cannot learn where walls are, only how a push goes on from the moves around it: what
    a few labelled episodes teach for every wall, and not only those they touched."""

    def __init__(self, conv: nn.Module, keypoints: int, action_dim: int, hidden: int = 128, bins: int = 0,
                 joint: bool = False, positions: bool = True):
        super().__init__()
        self.action_dim, self.bins, self.joint, self.positions = action_dim, bins, joint, positions
        self.conv = conv.requires_grad_(False)
        width = (4 if positions else 2) * keypoints
        self.embed = mlp([width, hidden])
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.head = mlp([2 * hidden + width, hidden, head_width(action_dim, bins, joint)])

    def keypoints(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8 (N, C, H, W)`` -> ``(N, 2K)``, as ``KeypointInverse.keypoints``."""
        return soft_argmax(self.conv(frames.float() / 255))

    def forward(self, points: torch.Tensor) -> Reading:
        """``points (E, T, 2K)`` -> the reading of the ``E (T - 1)`` transitions, episode after episode."""
        x = (points[:, 1:] - points[:, :-1]) * 10
        if self.positions:
            x = torch.cat([points[:, :-1], x], dim=-1)
        h, _ = self.gru(self.embed(x))
        out = self.head(torch.cat([h, x], dim=-1))
        return read_head(out.flatten(0, 1), self.action_dim, self.bins, self.joint)


def inverse_loss(reading: Reading, target: torch.Tensor) -> torch.Tensor:
    """The mean's squared error, plus the Gaussian likelihood of the error under ``log_std`` with the mean held
    fixed: the spread learns how far off the mean is, without pulling the mean toward the easy cases; with bins,
    plus the cross-entropy of the target's bins."""
    err2 = (target - reading.mean).pow(2)
    nll = 0.5 * err2.detach() * torch.exp(-2 * reading.log_std) + reading.log_std
    loss = err2.mean() + nll.mean()
    b, a, cells = reading.logits.shape
    if cells and a == 1 and target.shape[1] > 1:  # joint
        loss = loss + nn.functional.cross_entropy(reading.logits[:, 0], joint_bin(target, round(cells ** (1 / target.shape[1]))))
    elif cells:
        loss = loss + nn.functional.cross_entropy(reading.logits.flatten(0, 1), action_bin(target, cells).flatten())
    return loss


__all__ = ["KeypointInverse", "Reading", "SequenceInverse", "StateInverse", "action_bin", "draw_actions", "head_width",
           "inverse_loss", "joint_bin", "soft_argmax"]
