"""Frames through a frozen encoder, once: the one encoding pass, and trajectories of encoded states in memory.

Level 2 of the H-JEPA, the critics and the refined predictor all learn on states of a frozen level-1 encoder, so
each encodes its frames once (``encode_frames``, ``encode_dataset``) and then draws windows of states
(``EncodedTrajectories``) without touching a pixel again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np
import torch
from tqdm import tqdm

from amia.data.dataset import read_info


@torch.no_grad()
def encode_frames(encoder, frames: np.ndarray, device: torch.device | str = "cpu", chunk: int = 1024) -> torch.Tensor:
    """States ``(..., D)`` (float32, on the CPU) of ``uint8`` frames ``(..., C, H, W)``, encoded in chunks."""
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = [encoder(torch.from_numpy(flat[i:i + chunk]).to(device)).float().cpu() for i in range(0, len(flat), chunk)]
    return torch.cat(out).reshape(*frames.shape[:-3], -1)


def window_starts(offsets: np.ndarray, episodes: np.ndarray, frames: int) -> np.ndarray:
    """Global frame indices where a window of ``frames`` frames fits inside one of ``episodes`` (sorted)."""
    eps = np.sort(np.asarray(episodes))
    lo = offsets[eps]
    count = np.maximum(offsets[eps + 1] - lo - frames + 1, 0)
    if count.sum() == 0:
        longest = int((offsets[eps + 1] - lo).max()) if eps.size else 0
        raise ValueError(f"no trajectory has the {frames} frames a window needs (longest: {longest})")
    first = np.repeat(lo - np.concatenate([[0], np.cumsum(count)[:-1]]), count)
    return first + np.arange(count.sum())


@dataclass
class EncodedTrajectories:
    """Encoded trajectories: ``states (N, D)``, ``actions (N, A)`` (the action taken at each frame; the last
    frame's is unused), ``position (N, 2)`` (the agent's true x, y where known; never a model input) and
    ``offsets (E+1,)`` bounding the trajectories, as in a trajectory file."""

    states: torch.Tensor
    actions: torch.Tensor
    position: torch.Tensor | None
    offsets: np.ndarray

    @classmethod
    def from_episodes(cls, states: torch.Tensor, actions: torch.Tensor) -> EncodedTrajectories:
        """From equal-length episodes: ``states (E, T+1, D)`` and ``actions (E, T, A)``."""
        e, t1 = states.shape[:2]
        padded = torch.cat([actions, actions.new_zeros(e, 1, actions.shape[-1])], dim=1)
        return cls(states.flatten(0, 1), padded.flatten(0, 1), None, np.arange(e + 1) * t1)

    @property
    def episodes(self) -> int:
        return len(self.offsets) - 1

    def windows(self, starts: np.ndarray, frames: int) -> dict[str, torch.Tensor]:
        """Windows at ``starts (B,)``: ``states (B, L, D)``, ``actions (B, L-1, A)``, ``position (B, L, 2)``."""
        idx = torch.as_tensor(starts)[:, None] + torch.arange(frames)[None, :]
        out = {"states": self.states[idx], "actions": self.actions[idx[:, :-1]]}
        if self.position is not None:
            out["position"] = self.position[idx]
        return out

    def sample(self, starts: np.ndarray, count: int, frames: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``count`` windows of ``frames`` frames drawn uniformly among ``starts`` (``window_starts``)."""
        pick = torch.randint(len(starts), (count,), generator=generator).numpy()
        return self.windows(starts[pick], frames)


@torch.no_grad()
def encode_dataset(model, path: str | os.PathLike, device: str | torch.device = "cpu", chunk: int = 4096,
                   progress: bool = False) -> EncodedTrajectories:
    """Every frame of a trajectory file through ``model.encoder`` (one read per chunk, no grad), with the actions
    in the model's units (``model.normalise``)."""
    info = read_info(path)
    if tuple(info.obs_shape) != tuple(model.obs_shape) or info.action_dim != model.action_dim:
        raise ValueError(f"{path}: frames {info.obs_shape} and {info.action_dim}-D actions, but the model expects "
                         f"{model.obs_shape} and {model.action_dim}")
    was_training = model.training
    model.eval()
    states = []
    with h5py.File(info.path, "r") as f:
        for i in tqdm(range(0, info.frames, chunk), desc="encode frames", unit="chunk", disable=not progress):
            states.append(encode_frames(model.encoder, f["obs"][i:i + chunk], device))
        actions, position = torch.from_numpy(f["action"][()]).float(), torch.from_numpy(f["state"][:, :2])
    model.train(was_training)
    actions = model.normalise(actions.to(model.action_mid.device)).cpu() if model.action_box is not None else actions
    return EncodedTrajectories(torch.cat(states), actions, position, info.episode_offsets)


__all__ = ["EncodedTrajectories", "encode_dataset", "encode_frames", "window_starts"]
