"""On-disk trajectories: the HDF5 layout (version 1), its writer and a validating reader.

Layout of a trajectory file (all frames of all episodes laid end to end; N frames, E episodes):

===================  =========================  =================================================
dataset              dtype, shape               meaning
===================  =========================  =================================================
``obs``              uint8 (N, C, H, W)         observations
``action``           float32 (N, A)             ``action[i]`` is taken at frame ``i``; it is 0 on
                                                the last frame of each episode (no action follows);
                                                ``A = 0`` in frames without actions (video)
``state``            float32 (N, S)             true state, never an input: ``x, y, wall_x, door_y``
                                                in a rooms world, ``x, y`` in the maze and the gust
                                                world, ``x, y, fallen`` in the hazard world, ``x, y,
                                                cx, cy, caught`` in the chaser world (``state_names``)
``episode_offsets``  int64 (E + 1,)             episode ``e`` is frames ``offsets[e]:offsets[e+1]``
===================  =========================  =================================================

File attributes: ``format = "amia.trajectories"``, ``version = 1``, ``env_id``, ``state_names`` (JSON list; may be
empty, with ``state`` of shape ``(N, 0)``, when the world exposes no true state), ``meta`` (JSON: collection policy,
seed, ...) and, optionally, ``action_low`` / ``action_high`` (JSON lists of ``A`` numbers: the action box). New
files carry HDF5's Fletcher-32 checksum on every chunk, so a flipped bit is an error when its chunk is read
(``verify_frames`` reads them all), not a silently wrong frame.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from amia.infra.validate import refuse_links

FORMAT, VERSION = "amia.trajectories", 1


class DatasetError(ValueError):
    """A trajectory file that does not follow the documented layout."""


@dataclass(frozen=True)
class DatasetInfo:
    path: str
    env_id: str
    frames: int
    episodes: int
    obs_shape: tuple[int, int, int]
    action_dim: int
    state_names: tuple[str, ...]
    episode_offsets: np.ndarray
    meta: dict
    action_max: float = 0.0
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None


class TrajectoryWriter:
    """Writes episodes to a new trajectory file; the file appears at ``path`` only when closed whole."""

    def __init__(self, path: str | os.PathLike, env_id: str, obs_shape, action_dim: int,
                 state_names, meta: dict | None = None, action_low=None, action_high=None):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        refuse_links(self.path, self.tmp)
        self.f = h5py.File(self.tmp, "w")
        self.f.create_dataset("obs", (0, *obs_shape), np.uint8, maxshape=(None, *obs_shape),
                              chunks=(64, *obs_shape), compression="lzf", fletcher32=True)
        self.f.create_dataset("action", (0, action_dim), np.float32, maxshape=(None, None), chunks=(1024, max(action_dim, 1)),
                              fletcher32=True)
        self.f.create_dataset("state", (0, len(state_names)), np.float32, maxshape=(None, None),
                              chunks=(1024, max(len(state_names), 1)), fletcher32=True)
        self.f.attrs.update(format=FORMAT, version=VERSION, env_id=env_id,
                            state_names=json.dumps(list(state_names)), meta=json.dumps(meta or {}))
        for name, bound in (("action_low", action_low), ("action_high", action_high)):
            if bound is not None:
                self.f.attrs[name] = json.dumps([float(v) for v in np.broadcast_to(bound, (action_dim,))])
        self.offsets = [0]

    def add_batch(self, obs: np.ndarray, action: np.ndarray, state: np.ndarray) -> None:
        """Append equal-length episodes: ``obs (B, T+1, C, H, W)``, ``action (B, T, A)``, ``state (B, T+1, S)``."""
        b, t1 = obs.shape[:2]
        act = np.zeros((b, t1, action.shape[-1]), np.float32)
        act[:, :-1] = action
        n = self.offsets[-1]
        for name, arr in (("obs", obs), ("action", act), ("state", state)):
            ds = self.f[name]
            ds.resize(n + b * t1, axis=0)
            ds[n:] = arr.reshape(b * t1, *arr.shape[2:])
        self.offsets.extend(n + t1 * np.arange(1, b + 1))

    def close(self) -> None:
        self.f.create_dataset("episode_offsets", data=np.asarray(self.offsets, dtype=np.int64), fletcher32=True)
        self.f.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.f.close()
        self.tmp.unlink(missing_ok=True)


def _expect(cond: bool, path, msg: str) -> None:
    if not cond:
        raise DatasetError(f"{path}: {msg}")


def _layout(f: h5py.File, path: str) -> tuple:
    """The four datasets of the layout, checked for kind, dtype and rank: ``obs, action, state, episode_offsets``."""
    _expect(f.attrs.get("format") == FORMAT, path, f"attribute 'format' should be {FORMAT!r}, got {f.attrs.get('format')!r}")
    version = f.attrs.get("version", -1)
    version = version.item() if isinstance(version, np.generic) else version
    _expect(isinstance(version, (int, np.integer)) and int(version) == VERSION, path,
            f"attribute 'version' should be {VERSION}, got {version!r}")
    out = []
    for name, dtype, ndim in (("obs", np.uint8, 4), ("action", np.float32, 2), ("state", np.float32, 2),
                              ("episode_offsets", np.int64, 1)):
        _expect(name in f, path, f"missing dataset {name!r} (expected obs, action, state, episode_offsets)")
        ds = f[name]
        _expect(isinstance(ds, h5py.Dataset), path, f"{name!r} should be a dataset, got a {type(ds).__name__}")
        _expect(ds.dtype == dtype, path, f"dataset {ds.name!r} should have dtype {np.dtype(dtype)}, got {ds.dtype}")
        _expect(ds.ndim == ndim, path, f"dataset {ds.name!r} should have {ndim} dimensions, got shape {ds.shape}")
        _stored(ds, path)
        out.append(ds)
    return tuple(out)


def _stored(ds: h5py.Dataset, path: str) -> None:
    """The file holds every chunk (or byte) of the dataset's declared size: a declared shape that was never written
    (a file that declares 1e9 frames) is refused rather than read as zeros."""
    if ds.size == 0 or ds.id.get_create_plist().get_layout() == h5py.h5d.COMPACT:
        return
    if ds.chunks is None:
        stored, needed, unit = ds.id.get_storage_size(), ds.size * ds.dtype.itemsize, "bytes"
    else:
        stored, unit = ds.id.get_num_chunks(), "chunks"
        needed = int(np.prod([-(-s // c) for s, c in zip(ds.shape, ds.chunks)]))
    _expect(stored >= needed, path, f"dataset {ds.name!r} declares shape {ds.shape} but the file holds only {stored} of "
                                    f"its {needed} {unit} (a declared size larger than the data written)")


def _finite(ds: h5py.Dataset, path: str) -> np.ndarray:
    """The whole (small) dataset, refused if any value is NaN or infinite (naming the first bad index)."""
    values = ds[()]
    bad = ~np.isfinite(values).all(axis=1)
    _expect(not bad.any(), path, f"dataset {ds.name!r} holds a non-finite value at index {int(np.argmax(bad))} "
                                 f"({values[int(np.argmax(bad))].tolist()}; {int(bad.sum())} such rows); expected "
                                 "finite numbers")
    return values


def _attributes(f: h5py.File, path: str, state_columns: int) -> tuple[list, dict]:
    """``state_names`` (one per state column) and ``meta`` (a JSON object) of a file."""
    try:
        names = json.loads(f.attrs["state_names"])
    except (KeyError, TypeError, ValueError):
        names = None
    _expect(isinstance(names, list) and len(names) == state_columns, path,
            f"attribute 'state_names' should be a JSON list of {state_columns} names (one per state column), "
            f"got {f.attrs.get('state_names')!r}")
    try:
        meta = json.loads(f.attrs.get("meta", "{}"))
    except (TypeError, ValueError):
        meta = None
    _expect(isinstance(meta, dict), path, f"attribute 'meta' should be a JSON object, got {f.attrs.get('meta')!r}")
    return names, meta


def read_info(path: str | os.PathLike) -> DatasetInfo:
    """Open and check a trajectory file; every problem is a ``DatasetError`` naming file, field and expectation.

    Checked: the layout (datasets, dtypes, shapes), that the file holds what it declares, consistent lengths and
    offsets, finite actions and states (a scan of both), the attributes. ``verify_frames`` reads every frame."""
    path = str(path)
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: {'a directory, not a file' if os.path.isdir(path) else 'no such file'}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from None
    with f:
        obs, act, st, off = _layout(f, path)
        n = obs.shape[0]
        _expect(act.shape[0] == n and st.shape[0] == n, path,
                f"obs, action and state should have the same length, got {n}, {act.shape[0]}, {st.shape[0]}")
        try:
            offsets = off[()]
            obs[n - 1]
            actions, _ = _finite(act, path), _finite(st, path)
        except (OSError, RuntimeError, IndexError) as e:
            raise DatasetError(f"{path}: cannot read the data (truncated or corrupt file?): {e}") from None
        _expect(offsets.size >= 2 and offsets[0] == 0 and offsets[-1] == n and np.all(np.diff(offsets) > 0), path,
                f"episode_offsets should rise strictly from 0 to {n}, got {offsets[:3].tolist()}...{offsets[-2:].tolist()}")
        names, meta = _attributes(f, path, st.shape[1])
        low, high = (_action_bound(f, path, name, act.shape[1]) for name in ("action_low", "action_high"))
        _expect(low is None or high is None or all(a < b for a, b in zip(low, high)), path,
                f"attribute 'action_low' {low} should lie below 'action_high' {high} in every dimension")
        return DatasetInfo(path, str(f.attrs.get("env_id", "")), n, offsets.size - 1, tuple(obs.shape[1:]),
                           act.shape[1], tuple(names), offsets, meta, float(np.abs(actions).max(initial=0.0)), low, high)


def _action_bound(f: h5py.File, path: str, name: str, action_dim: int) -> tuple[float, ...] | None:
    """The optional attribute ``action_low`` or ``action_high``: a JSON list of ``action_dim`` finite numbers."""
    if name not in f.attrs:
        return None
    try:
        values = json.loads(f.attrs[name])
        ok = isinstance(values, list) and len(values) == action_dim and bool(np.all(np.isfinite(values)))
    except (TypeError, ValueError):
        ok = False
    _expect(ok, path, f"attribute {name!r} should be a JSON list of {action_dim} finite numbers, got {f.attrs[name]!r}")
    return tuple(float(v) for v in values)


def verify_frames(path: str | os.PathLike, chunk: int = 4096) -> int:
    """Read every frame of a trajectory file, so that a corrupted chunk (a failed Fletcher-32 checksum, a broken
    compressed block) is found now, naming the frames; returns the number of frames read."""
    info = read_info(path)
    with h5py.File(info.path, "r") as f:
        for i in range(0, info.frames, chunk):
            try:
                f["obs"][i:i + chunk]
            except (OSError, RuntimeError) as e:
                raise DatasetError(f"{path}: frames {i}..{min(i + chunk, info.frames) - 1} cannot be read (corrupt data: "
                                   f"{e})") from None
    return info.frames


def check_world(info: DatasetInfo, env_id: str) -> None:
    """The file fits the world ``env_id``: collected there, its frame size and channels, its 2-D actions within
    the world's step bound, its state columns."""
    from amia.envs import make_world

    world = make_world(env_id, 1)
    _expect(info.env_id == env_id, info.path, f"collected in {info.env_id!r}, expected {env_id!r}")
    _expect(tuple(info.obs_shape) == tuple(world.obs_shape), info.path,
            f"frames (channels, height, width) are {info.obs_shape}, expected {tuple(world.obs_shape)} for {env_id}")
    _expect(info.action_dim == 2, info.path, f"actions are {info.action_dim}-D, expected 2-D for {env_id}")
    bound = world.spec.max_step
    _expect(info.action_max <= bound * (1 + 1e-5), info.path,
            f"actions reach {info.action_max:.4g} in size, expected at most {bound} (the step bound of {env_id})")
    _expect(tuple(info.state_names) == tuple(world.state_names), info.path,
            f"state columns are {list(info.state_names)}, expected {list(world.state_names)} for {env_id}")


def split_episodes(episodes: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train / held-out episode indices: the last ``val_fraction`` of the file is held out."""
    n_val = max(1, int(round(episodes * val_fraction)))
    if episodes - n_val < 1:
        raise DatasetError(f"the dataset has {episodes} episode(s): too few to hold out {val_fraction:.0%} and still "
                           "train")
    return np.arange(episodes - n_val), np.arange(episodes - n_val, episodes)


def take_episodes(path: str | os.PathLike, out: str | os.PathLike, count: int) -> DatasetInfo:
    """Write the first ``count`` episodes of a trajectory file to a new file ``out`` (its attributes kept, ``meta``
    noting the source), e.g. the labelled few that post-training sees; returns the new file's info."""
    info = read_info(path)
    if not 1 <= count <= info.episodes:
        raise DatasetError(f"{path}: asked for {count} episodes, the file has {info.episodes}")
    meta = {**info.meta, "taken_from": str(path), "taken_episodes": count}
    writer = TrajectoryWriter(out, info.env_id, info.obs_shape, info.action_dim, info.state_names, meta,
                              info.action_low, info.action_high)
    try:
        with h5py.File(info.path, "r") as f:
            for lo, hi in zip(info.episode_offsets[:count], info.episode_offsets[1:count + 1]):
                writer.add_batch(f["obs"][lo:hi][None], f["action"][lo:hi - 1][None], f["state"][lo:hi][None])
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return read_info(out)
