"""The level-2 data pipeline of the H-JEPA (Sec. 4.6): level-1 windows cut into stride blocks.

Level 2 sees level 1 every ``k`` steps. These are small pure functions with documented shapes (tested on
hand-built tensors), plus ``encode_dataset``, which encodes every frame of a trajectory file once with the
frozen level-1 encoder so level-2 training never touches a pixel, and ``Level1Cache.windows``, which gathers
windows of those states. See ``amia.hjepa`` for the pooling choices (``first`` / ``mean``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import h5py
import numpy as np
import torch
from tqdm import tqdm

from amia.data.dataset import read_info

if TYPE_CHECKING:
    from amia.jepa import JEPA

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


def window_starts(offsets: np.ndarray, episodes: np.ndarray, frames: int) -> np.ndarray:
    """Global frame indices where a window of ``frames`` frames fits inside one of ``episodes`` (sorted)."""
    eps = np.sort(np.asarray(episodes))
    lo = offsets[eps]
    count = np.maximum(offsets[eps + 1] - lo - frames + 1, 0)
    if count.sum() == 0:
        longest = int((offsets[eps + 1] - lo).max()) if eps.size else 0
        raise ValueError(f"no episode has the {frames} frames a level-2 window needs (longest: {longest}); "
                         "collect longer episodes or lower level2.horizon / level2.stride")
    first = np.repeat(lo - np.concatenate([[0], np.cumsum(count)[:-1]]), count)
    return first + np.arange(count.sum())


@dataclass
class Level1Cache:
    """Level-1 states of a whole trajectory file, encoded once by the frozen level-1 encoder.

    ``states (N, D1)``, ``actions (N, A)``, ``position (N, 2)`` (the agent's true x, y; never a model input),
    ``offsets (E+1,)`` as in the file.
    """

    states: torch.Tensor
    actions: torch.Tensor
    position: torch.Tensor
    offsets: np.ndarray

    def windows(self, starts: np.ndarray, frames: int) -> dict[str, torch.Tensor]:
        """Windows at ``starts (B,)``: ``states (B, L, D1)``, ``actions (B, L-1, A)``, ``position (B, L, 2)``."""
        idx = torch.as_tensor(starts)[:, None] + torch.arange(frames)[None, :]
        return {"states": self.states[idx], "actions": self.actions[idx[:, :-1]], "position": self.position[idx]}


@torch.no_grad()
def encode_dataset(model: JEPA, path: str | os.PathLike, device: str | torch.device = "cpu", chunk: int = 2048,
                   progress: bool = False) -> Level1Cache:
    """Encode every frame of a trajectory file with the level-1 encoder (batched, no grad); one read per chunk."""
    info = read_info(path)
    if tuple(info.obs_shape) != tuple(model.obs_shape) or info.action_dim != model.action_dim:
        raise ValueError(f"{path}: frames {info.obs_shape} and {info.action_dim}-D actions, but the level-1 model "
                         f"expects {model.obs_shape} and {model.action_dim}")
    was_training = model.training
    model.eval()
    states = []
    with h5py.File(info.path, "r") as f:
        for i in tqdm(range(0, info.frames, chunk), desc="encode level 1", unit="chunk", disable=not progress):
            obs = torch.from_numpy(f["obs"][i:i + chunk]).to(device)
            states.append(model.encoder(obs).float().cpu())
        actions, position = torch.from_numpy(f["action"][()]), torch.from_numpy(f["state"][:, :2])
    model.train(was_training)
    return Level1Cache(torch.cat(states), actions, position, info.episode_offsets)


__all__ = ["POOLS", "Level1Cache", "action_blocks", "encode_dataset", "pool_span", "stride_blocks", "window_starts"]
