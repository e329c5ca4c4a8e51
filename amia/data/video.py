"""Video clips (.npy, .gif, .mp4, ...) into a trajectory file without actions: one clip per episode, frames
resized to a square and stored channels-first, action dimension 0 (see ``amia.data.dataset``)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from amia.data.dataset import TrajectoryWriter

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov")
SUFFIXES = (".npy", ".gif", *VIDEO_SUFFIXES)
RESIZE_CHUNK = 256  # frames resized at a time

PathLike = str | os.PathLike


class VideoError(ValueError):
    """A clip or source path that cannot be read as video; the message names the file and the expectation."""


def read_clip(path: PathLike) -> np.ndarray:
    """The frames of one clip as uint8 ``(T, H, W, C)``; ``.npy`` keeps its channels, other formats are RGB."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise VideoError(f"{path}: unknown clip type {suffix or '(no suffix)'!r}; expected one of {', '.join(SUFFIXES)}")
    frames = _read_npy(path) if suffix == ".npy" else _read_imageio(path, suffix)
    if frames.shape[0] == 0:
        raise VideoError(f"{path}: the clip holds no frames; expected at least one")
    return frames


def _read_npy(path: Path) -> np.ndarray:
    """A ``(T, H, W)`` or ``(T, H, W, C)`` (C <= 4) array, uint8 or float in [0, 1], as uint8 ``(T, H, W, C)``."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise VideoError(f"{path}: not a readable .npy array ({e})") from None
    expected = "expected a uint8 or float (values in [0, 1]) array of shape (T, H, W) or (T, H, W, C) with C <= 4"
    if not isinstance(arr, np.ndarray):
        raise VideoError(f"{path}: holds a {type(arr).__name__}, not one array; {expected}")
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or not 1 <= arr.shape[-1] <= 4:
        raise VideoError(f"{path}: array of shape {arr.shape}; {expected}")
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise VideoError(f"{path}: array of dtype {arr.dtype}; {expected}")
    if not np.all((arr >= 0) & (arr <= 1)):  # also refuses NaN
        raise VideoError(f"{path}: float array with values outside [0, 1] (or not finite); {expected}")
    return np.round(arr * 255).astype(np.uint8)


def _read_imageio(path: Path, suffix: str) -> np.ndarray:
    """A .gif (through Pillow) or a video file (through PyAV) as RGB uint8 ``(T, H, W, 3)``."""
    import imageio.v3 as iio

    if suffix in VIDEO_SUFFIXES and importlib.util.find_spec("av") is None:
        raise VideoError(f"{path}: reading {suffix} clips needs the 'av' package: pip install 'amia[video]'")
    try:
        if suffix == ".gif":
            frames = iio.imread(path, index=None, plugin="pillow", mode="RGB")
        else:
            frames = iio.imread(path, index=None, plugin="pyav")
    except Exception as e:  # decoders raise many kinds of errors on a corrupt file
        raise VideoError(f"{path}: cannot read the {suffix} clip (missing, corrupt or truncated?): {e}") from None
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VideoError(f"{path}: decoded to {frames.dtype} frames of shape {frames.shape}; expected RGB uint8 (T, H, W, 3)")
    return frames


def clip_paths(sources: PathLike | Sequence[PathLike]) -> list[Path]:
    """The clips named by ``sources`` (one path or a list); a directory gives its clips sorted by name (not recursive)."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                raise VideoError(f"{source}: a directory without clips; expected files ending in {', '.join(SUFFIXES)}")
            paths.extend(found)
        elif source.is_file():
            if source.suffix.lower() not in SUFFIXES:
                raise VideoError(f"{source}: unknown clip type {source.suffix or '(no suffix)'!r}; expected one of "
                                 f"{', '.join(SUFFIXES)}")
            paths.append(source)
        else:
            raise VideoError(f"{source}: no such file or directory; expected a clip or a directory of clips")
    if not paths:
        raise VideoError(f"no clips given; expected a path or a list of paths to clips ({', '.join(SUFFIXES)})")
    return paths


def resize_frames(frames: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 ``(T, H, W, C)`` to uint8 ``(T, C, image_size, image_size)`` by area averaging, in chunks of frames."""
    out = np.empty((frames.shape[0], frames.shape[-1], image_size, image_size), np.uint8)
    for i in range(0, frames.shape[0], RESIZE_CHUNK):
        x = torch.from_numpy(np.ascontiguousarray(frames[i:i + RESIZE_CHUNK])).permute(0, 3, 1, 2)
        if x.shape[-2:] != (image_size, image_size):
            x = F.interpolate(x.float(), size=(image_size, image_size), mode="area").round().clamp(0, 255)
        out[i:i + RESIZE_CHUNK] = x.to(torch.uint8).numpy()
    return out


def _check_clip(path: Path, frames: np.ndarray, expected: tuple, min_frames: int) -> None:
    """The clip has the first clip's ``(H, W, C)`` and at least ``min_frames`` frames."""
    if frames.shape[1:] != expected:
        (h, w, c), (eh, ew, ec) = frames.shape[1:], expected
        raise VideoError(f"{path}: frames of {h}x{w} with {c} channel(s); expected {eh}x{ew} with {ec} channel(s) "
                         "like the first clip")
    if frames.shape[0] < min_frames:
        raise VideoError(f"{path}: {frames.shape[0]} frames; expected at least {min_frames}")


def write_video_dataset(sources: PathLike | Sequence[PathLike], out: PathLike, image_size: int = 64,
                        min_frames: int = 2, progress: bool = True) -> Path:
    """Write the clips of ``sources`` to a new trajectory file ``out`` (one episode per clip, no actions).

    Every clip must match the first one's frame size and channels and hold ``min_frames`` frames; on any error
    nothing is left at ``out``, and an existing ``out`` is refused."""
    out = Path(out)
    if image_size < 1:
        raise ValueError(f"image_size should be at least 1, got {image_size}")
    if out.exists():
        raise VideoError(f"{out}: already exists; expected a new path for the trajectory file")
    paths = clip_paths(sources)
    meta = {"source": "video", "files": [str(p) for p in paths], "image_size": image_size}
    writer, expected = None, None
    try:
        for path in tqdm(paths, desc="video clips", unit="clip", disable=not progress):
            frames = read_clip(path)
            expected = expected or frames.shape[1:]
            _check_clip(path, frames, expected, min_frames)
            obs = resize_frames(frames, image_size)
            if writer is None:
                writer = TrajectoryWriter(out, "video", obs.shape[1:], 0, [], meta=meta)
            t = obs.shape[0]
            writer.add_batch(obs[None], np.zeros((1, t - 1, 0), np.float32), np.zeros((1, t, 0), np.float32))
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return out
