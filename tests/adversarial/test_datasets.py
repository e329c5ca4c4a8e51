"""Crafted trajectory files: each is refused on open (``read_info``), against its world (``check_world``) or when
its frames are read (``verify_frames``, ``amia info``), with a ``DatasetError`` naming the file and what is wrong;
a good file passes every check."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from amia.data.dataset import DatasetError, check_world, read_info, verify_frames
from amia.envs import env_spec

from .conftest import ENV, arrays, one_error_line, run_cli, write_file


def modified(data_file, tmp_path, change, **h5):
    """A copy of the good file with ``change(data)`` applied to its arrays and attributes."""
    data = arrays(data_file)
    change(data)
    return write_file(tmp_path / "bad.h5", data, **h5)


def put(key, value):
    return lambda d: d.__setitem__(key, value(d) if callable(value) else value)


def at(key, index, value):
    def change(d):
        d[key] = d[key].copy()
        d[key][index] = value
    return change


def attr(name, value):
    return lambda d: d["attrs"].__setitem__(name, value)


def drop_attr(name):
    return lambda d: d["attrs"].pop(name)


ON_OPEN = [  # (name, change, the words the message must hold)
    ("obs-missing", put("obs", None), "missing dataset 'obs'"),
    ("action-missing", put("action", None), "missing dataset 'action'"),
    ("offsets-missing", put("episode_offsets", None), "missing dataset 'episode_offsets'"),
    ("obs-float", put("obs", lambda d: d["obs"].astype(np.float32)), "'/obs' should have dtype uint8, got float32"),
    ("action-float64", put("action", lambda d: d["action"].astype(np.float64)), "should have dtype float32, got float64"),
    ("offsets-int32", put("episode_offsets", lambda d: d["episode_offsets"].astype(np.int32)), "dtype int64"),
    ("obs-3d", put("obs", lambda d: d["obs"][:, 0]), "'/obs' should have 4 dimensions"),
    ("action-1d", put("action", lambda d: d["action"][:, 0]), "'/action' should have 2 dimensions"),
    ("short-action", put("action", lambda d: d["action"][:-5]), "should have the same length, got 126, 121, 126"),
    ("offsets-not-from-0", at("episode_offsets", 0, 3), "episode_offsets should rise strictly from 0 to 126"),
    ("offsets-short-of-end", at("episode_offsets", -1, 100), "episode_offsets should rise strictly from 0 to 126"),
    ("offsets-falling", at("episode_offsets", 2, 5), "episode_offsets should rise strictly"),
    ("one-offset", put("episode_offsets", np.array([0], np.int64)), "episode_offsets should rise strictly"),
    ("nan-action", at("action", (37, 1), np.nan), "dataset '/action' holds a non-finite value at index 37"),
    ("inf-action", at("action", (5, 0), np.inf), "dataset '/action' holds a non-finite value at index 5"),
    ("minus-inf-action", at("action", (125, 0), -np.inf), "non-finite value at index 125"),
    ("nan-state", at("state", (90, 2), np.nan), "dataset '/state' holds a non-finite value at index 90"),
    ("nan-state-first", at("state", (0, 0), np.nan), "dataset '/state' holds a non-finite value at index 0"),
    ("format", attr("format", "something.else"), "attribute 'format' should be 'amia.trajectories'"),
    ("no-format", drop_attr("format"), "attribute 'format' should be"),
    ("version-2", attr("version", 2), "attribute 'version' should be 1, got 2"),
    ("version-text", attr("version", "one"), "attribute 'version' should be 1, got 'one'"),
    ("state-names-not-json", attr("state_names", "x, y"), "attribute 'state_names' should be a JSON list of 4"),
    ("state-names-count", attr("state_names", '["x", "y"]'), "a JSON list of 4 names"),
    ("meta-not-json", attr("meta", "{oops"), "attribute 'meta' should be a JSON object"),
    ("meta-a-list", attr("meta", "[1, 2]"), "attribute 'meta' should be a JSON object"),
]


@pytest.mark.parametrize("name, change, words", ON_OPEN, ids=[n for n, _, _ in ON_OPEN])
def test_a_bad_file_is_refused_on_open_naming_it(data_file, tmp_path, name, change, words):
    path = modified(data_file, tmp_path, change)
    with pytest.raises(DatasetError) as e:
        read_info(path)
    assert str(e.value).startswith(f"{path}: ") and words in str(e.value), str(e.value)


AGAINST_WORLD = [
    ("nan-like-huge-action", at("action", (3, 0), 1e30), "actions reach 1e+30 in size, expected at most"),
    ("action-too-large", at("action", (3, 1), 50.0), "actions reach 50 in size, expected at most"),
    ("three-d-actions", put("action", lambda d: np.concatenate([d["action"], d["action"][:, :1]], 1)),
     "actions are 3-D, expected 2-D"),
    ("three-channels", put("obs", lambda d: np.concatenate([d["obs"], d["obs"][:, :1]], 1)),
     "frames (channels, height, width) are (3, 64, 64), expected (2, 64, 64)"),
    ("one-channel", put("obs", lambda d: d["obs"][:, :1]), "are (1, 64, 64), expected (2, 64, 64)"),
    ("small-frames", put("obs", lambda d: d["obs"][:, :, :32, :32]), "are (2, 32, 32), expected (2, 64, 64)"),
    ("other-world", attr("env_id", "amia/Maze-v0"), "collected in 'amia/Maze-v0', expected 'amia/TwoRooms-v0'"),
    ("state-columns", attr("state_names", '["a", "b", "c", "d"]'), "state columns are ['a', 'b', 'c', 'd'], expected"),
]


@pytest.mark.parametrize("name, change, words", AGAINST_WORLD, ids=[n for n, _, _ in AGAINST_WORLD])
def test_a_file_that_does_not_fit_its_world_is_refused(data_file, tmp_path, name, change, words):
    path = modified(data_file, tmp_path, change)
    with pytest.raises(DatasetError) as e:
        check_world(read_info(path), ENV)
    assert str(e.value).startswith(f"{path}: ") and words in str(e.value), str(e.value)


@pytest.mark.parametrize("name, change, words", AGAINST_WORLD[:6], ids=[n for n, _, _ in AGAINST_WORLD[:6]])
def test_info_refuses_what_does_not_fit_the_files_own_world(data_file, tmp_path, capsys, name, change, words):
    path = modified(data_file, tmp_path, change)
    code, out, err = run_cli(["info", path], capsys)
    line = one_error_line(err)
    assert code == 2 and str(path) in line and words in line and out == ""


def test_obs_stored_as_a_group_is_refused(data_file, tmp_path):
    path = modified(data_file, tmp_path, put("obs", None))
    with h5py.File(path, "a") as f:
        f.create_group("obs").create_dataset("frames", data=np.zeros((2, 2), np.uint8))
    with pytest.raises(DatasetError, match="'obs' should be a dataset, got a Group"):
        read_info(path)


def test_a_file_declaring_a_billion_frames_it_does_not_hold_is_refused(data_file, tmp_path):
    data = arrays(data_file)
    path = tmp_path / "huge.h5"
    n = 10**9
    with h5py.File(path, "w") as f:
        f.create_dataset("obs", (n, 2, 64, 64), np.uint8, chunks=(64, 2, 64, 64), compression="lzf")
        f.create_dataset("action", (n, 2), np.float32, chunks=(1024, 2))
        f.create_dataset("state", (n, 4), np.float32, chunks=(1024, 4))
        f.create_dataset("episode_offsets", data=np.array([0, n], np.int64))
        f.attrs.update(data["attrs"])
    assert path.stat().st_size < 100_000
    with pytest.raises(DatasetError) as e:
        read_info(path)
    assert "declares shape (1000000000, 2, 64, 64) but the file holds only 0 of its" in str(e.value)


def test_a_contiguous_dataset_declared_longer_than_written_is_refused(data_file, tmp_path):
    data = arrays(data_file)
    path = tmp_path / "contiguous.h5"
    with h5py.File(path, "w") as f:
        for k in ("obs", "action", "state"):
            f.create_dataset(k, data=data[k])
        f.create_dataset("episode_offsets", data=data["episode_offsets"])
        f.attrs.update(data["attrs"])
        del f["action"]
        f.create_dataset("action", (126, 2), np.float32)  # never written: no storage allocated
    with pytest.raises(DatasetError, match="declares shape .126, 2. but the file holds only 0 of its 1008 bytes"):
        read_info(path)


@pytest.mark.parametrize("content, words", [(b"", "not a readable HDF5 file"), (b"not hdf5 at all" * 10,
                                                                                 "not a readable HDF5 file")])
def test_a_file_that_is_not_hdf5_is_refused(tmp_path, content, words):
    path = tmp_path / "x.h5"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=words):
        read_info(path)


def test_a_truncated_file_is_refused(data_file, tmp_path):
    path = tmp_path / "cut.h5"
    path.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    with pytest.raises(DatasetError) as e:
        read_info(path)
    assert str(e.value).startswith(str(path)) and ("truncated" in str(e.value) or "corrupt" in str(e.value))


@pytest.mark.parametrize("kind, words", [("missing", "no such file"), ("directory", "a directory, not a file")])
def test_a_path_that_is_no_file_is_named(tmp_path, kind, words):
    path = tmp_path / "d.h5"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(DatasetError, match=f"{path}: {words}"):
        read_info(path)


def flip_inside_a_chunk(path, name: str = "obs", chunk: int = 1) -> None:
    """Flip one byte in the middle of a stored (compressed) chunk of a dataset."""
    with h5py.File(path, "r") as f:
        info = f[name].id.get_chunk_info(chunk)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset + info.size // 2] ^= 0x5A
    path.write_bytes(bytes(raw))


def test_a_bit_flip_in_the_compressed_frames_is_found(data_file, tmp_path):
    path = tmp_path / "flipped.h5"
    path.write_bytes(data_file.read_bytes())
    flip_inside_a_chunk(path, "obs", 0)
    read_info(path)  # the first chunk is not read on open...
    with pytest.raises(DatasetError) as e:  # ...but reading every frame finds it
        verify_frames(path)
    assert str(e.value).startswith(f"{path}: frames 0..125 cannot be read (corrupt data")


def test_a_bit_flip_in_the_last_chunk_is_found_on_open(data_file, tmp_path):
    path = tmp_path / "flipped.h5"
    path.write_bytes(data_file.read_bytes())
    flip_inside_a_chunk(path, "obs", 1)
    with pytest.raises(DatasetError, match="cannot read the data .truncated or corrupt file"):
        read_info(path)


def test_info_reports_a_bit_flip_in_one_line(data_file, tmp_path, capsys):
    path = tmp_path / "flipped.h5"
    path.write_bytes(data_file.read_bytes())
    flip_inside_a_chunk(path, "obs", 0)
    code, out, err = run_cli(["info", path], capsys)
    assert code == 2 and f"{path}: frames 0..125 cannot be read" in one_error_line(err) and out == ""


def test_a_bit_flip_in_the_actions_is_found_on_open(data_file, tmp_path):
    path = tmp_path / "flipped.h5"
    path.write_bytes(data_file.read_bytes())
    flip_inside_a_chunk(path, "action", 0)
    with pytest.raises(DatasetError, match="cannot read the data"):
        read_info(path)


def test_a_good_file_passes_every_check_and_carries_checksums(data_file):
    info = read_info(data_file)
    check_world(info, ENV)
    assert verify_frames(data_file) == info.frames == 126 and info.episodes == 6
    assert 0 < info.action_max <= env_spec(ENV).max_step + 1e-6
    with h5py.File(data_file, "r") as f:
        assert all(f[k].fletcher32 for k in ("obs", "action", "state", "episode_offsets"))
