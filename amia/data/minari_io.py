"""Conversion between amia's trajectory files and Minari datasets, the Gymnasium ecosystem's offline-data standard.

An amia file becomes a local Minari dataset (under ``MINARI_DATASETS_PATH``, default ``~/.minari/datasets``) whose
observations are the frames, channels last (``Box (H, W, C) uint8``), or, when the file has a true state, a ``Dict``
with ``pixels`` and ``state (S,) float32``; each episode of ``T + 1`` frames has ``T`` actions in the file's action
box, rewards 0 (the data is reward-free) and its last step marked truncated (the file records no terminal states).
The file's env id, state names, meta and declared bounds travel in the dataset's metadata under ``amia``, so that
the way back restores the same file, array for array. Any Minari dataset whose observations hold a picture (an
image ``Box``, or one entry of a ``Dict``) becomes an amia file: frames from the picture, state from the vector
parts, action bounds from its ``Box`` action space. Minari's own API writes and reads the datasets.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from gymnasium import spaces

from amia.data.dataset import DatasetInfo, TrajectoryWriter, read_info
from amia.envs import ENV_SPECS
from amia.envs.pixels import PIXEL_KEY, resize_frames, state_of

AMIA_KEY, STATE_KEY = "amia", "state"
CHUNK = 32  # episodes handed to Minari at once: files larger than memory convert in pieces
MIN_VERSION = "0.5.4"  # the first to store pictures losslessly on request (earlier ones always JPEG-encode them)


def _minari():
    """The ``minari`` package, or a one-line error saying how to install it."""
    try:
        import minari
        from packaging.version import Version
    except ImportError:
        raise ValueError(f"converting to or from Minari needs minari>={MIN_VERSION} (Python >= 3.11): "
                         "pip install 'amia[minari]'") from None
    if Version(minari.__version__) < Version(MIN_VERSION):
        raise ValueError(f"minari {minari.__version__} stores frames as JPEG (lossy); amia needs minari>={MIN_VERSION}: "
                         "pip install 'amia[minari]'")
    return minari


def dataset_exists(dataset_id: str) -> bool:
    """Whether the local Minari root holds a dataset ``dataset_id`` (a malformed id: a one-line error)."""
    _minari()
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.storage.datasets_root_dir import get_dataset_path

    try:
        parse_dataset_id(dataset_id)
    except ValueError:
        raise ValueError(f"minari:{dataset_id}: not a Minari dataset id; expected (namespace/)name-vN, "
                         "e.g. amia/tworooms-v0") from None
    return (get_dataset_path(dataset_id) / "data").exists()


def action_bounds(info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    """The action box to declare: the file's own bounds, else the ``max_step`` of amia's world ``env_id``, else an
    unbounded box (the file says nothing)."""
    if info.action_low is not None and info.action_high is not None:
        return np.float32(info.action_low), np.float32(info.action_high)
    bound = ENV_SPECS[info.env_id].max_step if info.env_id in ENV_SPECS else np.inf
    return np.full(info.action_dim, -bound, np.float32), np.full(info.action_dim, bound, np.float32)


def minari_spaces(info: DatasetInfo) -> tuple[spaces.Space, spaces.Box]:
    """Observation space (the picture channels last, with the state beside it when there is one) and action box."""
    c, h, w = info.obs_shape
    image = spaces.Box(0, 255, (h, w, c), np.uint8)
    obs_space = image
    if info.state_names:
        state = spaces.Box(-np.inf, np.inf, (len(info.state_names),), np.float32)
        obs_space = spaces.Dict({PIXEL_KEY: image, STATE_KEY: state})
    return obs_space, spaces.Box(*action_bounds(info), (info.action_dim,), np.float32)


def episode_buffers(info: DatasetInfo) -> Iterator:
    """One Minari ``EpisodeBuffer`` per episode of the file: ``T + 1`` observations, ``T`` actions."""
    from minari.data_collector import EpisodeBuffer

    with h5py.File(info.path, "r") as f:
        for e, (a, b) in enumerate(zip(info.episode_offsets[:-1], info.episode_offsets[1:])):
            frames = np.ascontiguousarray(f["obs"][a:b].transpose(0, 2, 3, 1))
            obs = {PIXEL_KEY: frames, STATE_KEY: f["state"][a:b]} if info.state_names else frames
            t = int(b - a - 1)
            yield EpisodeBuffer(id=e, observations=obs, actions=f["action"][a:b - 1],
                                rewards=np.zeros(t, np.float32), terminations=np.zeros(t, bool),
                                truncations=np.arange(t) == t - 1, infos={})


def amia_metadata(info: DatasetInfo) -> dict:
    """What the Minari side cannot say itself, kept so that the way back restores the file exactly."""
    return {"env_id": info.env_id, "state_names": list(info.state_names), "meta": info.meta,
            "action_low": None if info.action_low is None else list(info.action_low),
            "action_high": None if info.action_high is None else list(info.action_high)}


def description(info: DatasetInfo) -> str:
    """The dataset's description for Minari users: where the frames and the state are, and what rewards mean."""
    state = f"observations['{STATE_KEY}'] the true state ({', '.join(info.state_names)})" if info.state_names else \
        "no true state"
    pixels = f"observations['{PIXEL_KEY}']" if info.state_names else "observations"
    return (f"Reward-free trajectories of {info.env_id} written by amia: {pixels} are the frames (H, W, C) uint8, "
            f"{state}; rewards are 0 and the last step of each episode is marked truncated.")


def to_minari(h5_path: str | os.PathLike, dataset_id: str, force: bool = False) -> str:
    """Write the amia trajectory file ``h5_path`` as the local Minari dataset ``dataset_id``; returns its
    directory. An existing dataset of that id is replaced only with ``force``."""
    minari = _minari()
    info = read_info(h5_path)  # a bad file fails before anything is replaced
    if dataset_exists(dataset_id):
        if not force:
            raise FileExistsError(f"minari:{dataset_id} exists; pass --force to replace it")
        _remove(dataset_id)
    obs_space, act_space = minari_spaces(info)
    buffers, dataset = episode_buffers(info), None
    try:
        while chunk := [buf for _, buf in zip(range(CHUNK), buffers)]:
            if dataset is None:
                with warnings.catch_warnings():  # Minari asks for authors, links and eval envs a file cannot name
                    warnings.simplefilter("ignore", UserWarning)
                    dataset = minari.create_dataset_from_buffers(
                        dataset_id, chunk, observation_space=obs_space, action_space=act_space,
                        algorithm_name=f"amia collect ({info.meta.get('collect', {}).get('policy', 'unknown policy')})",
                        description=description(info), jpeg_encoding=False)
            else:
                dataset.update_dataset_from_buffer(chunk)
        dataset.storage.update_metadata({AMIA_KEY: amia_metadata(info)})
    except BaseException:
        _remove(dataset_id)
        raise
    return str(dataset.storage.data_path.parent)


def _remove(dataset_id: str) -> None:
    from minari.storage.datasets_root_dir import get_dataset_path

    shutil.rmtree(get_dataset_path(dataset_id), ignore_errors=True)


def load_minari(dataset_id: str):
    """The local Minari dataset ``dataset_id``; a one-line error naming it when it is not there."""
    minari = _minari()
    if not dataset_exists(dataset_id):
        from minari.storage.datasets_root_dir import get_dataset_path

        raise FileNotFoundError(f"minari:{dataset_id}: no such Minari dataset under {get_dataset_path()} "
                                "(set MINARI_DATASETS_PATH, or check `minari list local`)")
    return minari.load_dataset(dataset_id)


def picture_key(space: spaces.Space, dataset_id: str) -> str | None:
    """Where the frames are: ``None`` (the observation is the picture) or the ``Dict`` key holding it (``pixels``
    first); a one-line error when the observations hold no picture (frames cannot be rendered offline)."""
    if is_picture_space(space):
        return None
    if isinstance(space, spaces.Dict):
        keys = [k for k, s in space.spaces.items() if is_picture_space(s)]
        if keys:
            return PIXEL_KEY if PIXEL_KEY in keys else keys[0]
    raise ValueError(f"minari:{dataset_id}: observations {space} hold no picture; expected a uint8 Box (H, W, C) or "
                     f"(H, W), alone or as an entry of a Dict (frames cannot be rendered from a stored dataset)")


def is_picture_space(space: spaces.Space) -> bool:
    """A ``uint8`` ``Box`` of shape ``(H, W)`` or ``(H, W, C)``: Minari's pictures, with any number of channels."""
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) in (2, 3)


def frames_of(pictures: np.ndarray, image_size: int | None) -> np.ndarray:
    """``uint8 (T, H, W[, C])`` pictures as amia frames ``(T, C, H, W)``; resized only when ``image_size`` is given
    and differs (otherwise the values are kept exactly)."""
    pictures = np.asarray(pictures, np.uint8)
    if pictures.ndim == 3:
        pictures = pictures[..., None]
    h, w = pictures.shape[1:3]
    if image_size is not None and (h, w) != (image_size, image_size):
        return resize_frames(pictures, image_size)
    return np.ascontiguousarray(pictures.transpose(0, 3, 1, 2))


def episode_arrays(episode, obs_space: spaces.Space, key: str | None, image_size: int | None,
                   dataset_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Frames ``(T+1, C, H, W)``, actions ``(T, A)``, states ``(T+1, S)`` and state names of one Minari episode."""
    obs = episode.observations
    frames = frames_of(obs if key is None else obs[key], image_size)
    actions = np.asarray(episode.actions, np.float32).reshape(len(episode.rewards), -1)
    if len(frames) != len(actions) + 1:
        raise ValueError(f"minari:{dataset_id}: episode {episode.id} has {len(frames)} observations and "
                         f"{len(actions)} actions; expected one observation more than actions")
    states, names = state_of(obs, obs_space)
    return frames, actions, states, names


def check_action_space(space: spaces.Space, dataset_id: str) -> None:
    if not (isinstance(space, spaces.Box) and len(space.shape) == 1):
        raise ValueError(f"minari:{dataset_id}: action space {space} is not a 1-D Box; amia plans continuous actions")


def writer_for(out: Path, dataset, key: str | None, image_size: int | None, obs_shape, names: list[str]):
    """A trajectory writer with the file's own attributes when the dataset came from amia, else with the
    dataset's env id (or ``minari:ID``), action box and provenance."""
    saved, space = dataset.storage.metadata.get(AMIA_KEY), dataset.action_space
    if saved and len(saved["state_names"]) == len(names):
        return TrajectoryWriter(out, saved["env_id"], obs_shape, space.shape[0], saved["state_names"], saved["meta"],
                                saved["action_low"], saved["action_high"])
    bounded = bool(np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)))
    env_id = dataset.env_spec.id if dataset.env_spec is not None else f"minari:{dataset.id}"
    meta = {"source": "minari", "dataset_id": dataset.id, "minari_version": dataset.minari_version,
            "frames_from": "obs" if key is None else f"obs:{key}", "image_size": image_size,
            "action_space": str(space)}
    return TrajectoryWriter(out, env_id, obs_shape, space.shape[0], names, meta,
                            space.low if bounded else None, space.high if bounded else None)


def from_minari(dataset_id: str, out_h5: str | os.PathLike, image_size: int | None = None, force: bool = False) -> str:
    """Write the local Minari dataset ``dataset_id`` as the amia trajectory file ``out_h5`` (atomic: the file
    appears only when whole); frames resized to ``image_size`` when given. An existing file is replaced only with
    ``force``."""
    out = Path(out_h5)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    if image_size is not None and image_size < 1:
        raise ValueError(f"image size must be >= 1, got {image_size}")
    dataset = load_minari(dataset_id)
    key = picture_key(dataset.observation_space, dataset_id)
    check_action_space(dataset.action_space, dataset_id)
    if dataset.total_episodes == 0:
        raise ValueError(f"minari:{dataset_id}: the dataset holds no episodes")
    writer = None
    try:
        for episode in dataset.iterate_episodes():
            frames, actions, states, names = episode_arrays(episode, dataset.observation_space, key, image_size,
                                                            dataset_id)
            writer = writer or writer_for(out, dataset, key, image_size, frames.shape[1:], names)
            writer.add_batch(frames[None], actions[None], states[None])
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return str(out)


__all__ = ["action_bounds", "dataset_exists", "from_minari", "load_minari", "minari_spaces", "picture_key",
           "to_minari"]
