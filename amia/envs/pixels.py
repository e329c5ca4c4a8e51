"""Frames from any Gymnasium environment: where its pixels come from, and the same square size for every frame.

An environment gives pixels either as its observation (a ``Box`` of shape ``(H, W, 3)`` or ``(H, W, 1)``, or such a
``Box`` under the key ``pixels`` of a ``Dict`` observation) or through ``render()`` when made with
``render_mode="rgb_array"``. Whatever else the observation holds (a vector ``Box``, the other ``Dict`` entries) is
the environment's proprioception or true state: it may be stored beside the frames, never needed by the model.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

PIXEL_KEY = "pixels"


def is_image_space(space: spaces.Space) -> bool:
    """A ``Box`` of ``uint8`` pictures ``(H, W, C)`` with 1, 3 or 4 channels."""
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 \
        and space.shape[-1] in (1, 3, 4)


def frame_source(observation_space: spaces.Space, render_modes: list[str], env_id: str) -> str:
    """``"obs"`` (the observation is the picture), ``"obs:KEY"`` (a ``Dict`` entry is) or ``"render"``; a clear
    error when the environment offers neither."""
    if is_image_space(observation_space):
        return "obs"
    if isinstance(observation_space, spaces.Dict):
        keys = [k for k, s in observation_space.spaces.items() if is_image_space(s)]
        if keys:
            return f"obs:{PIXEL_KEY if PIXEL_KEY in keys else keys[0]}"
    if "rgb_array" in render_modes:
        return "render"
    raise ValueError(f"{env_id}: observations {observation_space} are not pictures and the environment cannot render "
                     f"them (render modes {render_modes}); expected an image observation or render_mode='rgb_array'")


def is_vector_space(space: spaces.Space) -> bool:
    """A ``Box`` of at most one dimension: proprioception or true state, not a picture."""
    return isinstance(space, spaces.Box) and len(space.shape) <= 1


def state_of(obs, observation_space: spaces.Space) -> tuple[np.ndarray, list[str]]:
    """The vector part of a batch of observations as ``float32 (B, S)`` with a name per column (``S = 0`` when
    there is none): a vector ``Box`` as is, a ``Dict``'s vector entries in key order."""
    if is_vector_space(observation_space):
        arr = np.asarray(obs, np.float32).reshape(len(obs), -1)
        return arr, [f"obs_{i}" for i in range(arr.shape[1])]
    if isinstance(observation_space, spaces.Dict):
        cols, names = [], []
        for key, space in sorted(observation_space.spaces.items()):
            if is_vector_space(space):
                arr = np.asarray(obs[key], np.float32).reshape(len(obs[key]), -1)
                cols.append(arr)
                names += [f"{key}_{i}" if arr.shape[1] > 1 else key for i in range(arr.shape[1])]
        if cols:
            return np.concatenate(cols, axis=1), names
    n = len(obs[next(iter(obs))]) if isinstance(obs, dict) else len(obs)
    return np.zeros((n, 0), np.float32), []


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """``uint8 (B, H, W, C)`` pictures to ``uint8 (B, C', size, size)``, channels first; an alpha channel is dropped
    (``C' = 3``), grey stays one channel. Shrinking averages areas (no aliasing); growing is bilinear."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4) or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 pictures of shape (B, H, W, 1|3|4), got {frames.dtype} {frames.shape}")
    x = torch.from_numpy(np.ascontiguousarray(frames[..., :3])).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        shrink = x.shape[-2] >= size and x.shape[-1] >= size
        x = F.interpolate(x, size=(size, size), mode="area") if shrink else \
            F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


__all__ = ["PIXEL_KEY", "frame_source", "is_image_space", "is_vector_space", "resize_frames", "state_of"]
