"""Video clips into trajectory files: .npy, .gif and .mp4 clips read, resized and stored as episodes without actions;
bad inputs refused with an error naming the file, leaving nothing behind."""

from __future__ import annotations

import importlib.util

import h5py
import imageio.v3 as iio
import numpy as np
import pytest

from amia.data import video
from amia.data.dataset import read_info
from amia.data.video import VideoError, clip_paths, read_clip, write_video_dataset

T, SIZE = 12, 16
HAS_AV = importlib.util.find_spec("av") is not None


def square_clip(channels: int = 3, frames: int = T, size: int = SIZE) -> np.ndarray:
    """uint8 (T, H, W, C): a bright 4x4 square on black, one row down every other frame and one column right each."""
    clip = np.zeros((frames, size, size, channels), np.uint8)
    for t in range(frames):
        clip[t, 2 + t // 2:6 + t // 2, t:t + 4] = 255
    return clip


def centroids(frames: np.ndarray) -> np.ndarray:
    """(T, 2) row and column of the bright pixels' centre of mass, from channels-first (T, C, H, W) frames."""
    bright = (frames.max(axis=1) > 127).astype(float)
    rows, cols = np.indices(bright.shape[1:])
    mass = bright.sum(axis=(1, 2))
    return np.stack([(bright * rows).sum(axis=(1, 2)) / mass, (bright * cols).sum(axis=(1, 2)) / mass], axis=1)


def stored(path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        return f["obs"][()], f["episode_offsets"][()]


def write_clip(path, clip: np.ndarray):
    if path.suffix == ".npy":
        np.save(path, clip)
    elif path.suffix == ".gif":
        iio.imwrite(path, clip, loop=0)
    else:
        iio.imwrite(path, clip, plugin="pyav", codec="libx264", fps=10)
    return path


def test_npy_round_trips_exactly_and_a_directory_gives_clips_by_name(tmp_path):
    rng = np.random.default_rng(0)
    grey_a, grey_b = rng.integers(0, 256, (T, SIZE, SIZE), np.uint8), rng.integers(0, 256, (T + 3, SIZE, SIZE), np.uint8)
    clips = tmp_path / "clips"
    clips.mkdir()
    np.save(clips / "b.npy", grey_b)
    np.save(clips / "a.npy", grey_a)
    (clips / "notes.txt").write_text("not a clip")
    out = write_video_dataset(clips, tmp_path / "video.h5", image_size=SIZE, progress=False)
    assert out == tmp_path / "video.h5"
    info = read_info(out)
    assert (info.env_id, info.episodes, info.frames, info.obs_shape, info.action_dim) == ("video", 2, 2 * T + 3,
                                                                                          (1, SIZE, SIZE), 0)
    assert info.state_names == ()
    assert info.meta == {"source": "video", "files": [str(clips / "a.npy"), str(clips / "b.npy")], "image_size": SIZE}
    obs, offsets = stored(out)
    assert offsets.tolist() == [0, T, 2 * T + 3]
    np.testing.assert_array_equal(obs[:T, 0], grey_a)
    np.testing.assert_array_equal(obs[T:, 0], grey_b)


def test_float_npy_is_scaled_to_bytes_and_rgb_keeps_three_channels(tmp_path):
    clip = square_clip(3).astype(np.float32) / 255
    clip[:, 0, 0] = [0.5, 0.25, 1.0]
    np.save(tmp_path / "float.npy", clip)
    frames = read_clip(tmp_path / "float.npy")
    assert frames.dtype == np.uint8 and frames.shape == (T, SIZE, SIZE, 3)
    assert frames[0, 0, 0].tolist() == [128, 64, 255]
    np.testing.assert_array_equal(frames[:, 1:], square_clip(3)[:, 1:])
    info = read_info(write_video_dataset(tmp_path / "float.npy", tmp_path / "out.h5", image_size=8, progress=False))
    assert info.obs_shape == (3, 8, 8)


@pytest.mark.parametrize("image_size", [8, 32])
def test_resized_frames_keep_the_square_where_it_was(tmp_path, image_size):
    clip = square_clip(1)
    np.save(tmp_path / "clip.npy", clip)
    out = write_video_dataset([tmp_path / "clip.npy"], tmp_path / "out.h5", image_size=image_size, progress=False)
    obs, _ = stored(out)
    assert obs.shape == (T, 1, image_size, image_size)
    scale = image_size / SIZE
    expected = (centroids(clip.transpose(0, 3, 1, 2)) + 0.5) * scale - 0.5  # pixel centres map by the scale
    np.testing.assert_allclose(centroids(obs), expected, atol=0.3)
    assert obs.max() == 255 and obs.min() == 0


@pytest.mark.parametrize("suffix", [".gif", pytest.param(".mp4", marks=pytest.mark.skipif(not HAS_AV, reason="needs av"))])
def test_gif_and_mp4_clips_become_rgb_episodes(tmp_path, suffix):
    clip = square_clip(3)
    write_clip(tmp_path / f"clip{suffix}", clip)
    frames = read_clip(tmp_path / f"clip{suffix}")
    assert frames.shape == (T, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - clip).max() <= 40  # lossy codecs: close, not exact
    out = write_video_dataset([tmp_path / f"clip{suffix}", tmp_path / f"clip{suffix}"], tmp_path / "out.h5",
                              image_size=8, progress=False)
    info = read_info(out)
    assert (info.episodes, info.frames, info.obs_shape, info.action_dim) == (2, 2 * T, (3, 8, 8), 0)
    obs, _ = stored(out)
    expected = (centroids(clip.transpose(0, 3, 1, 2)) + 0.5) / 2 - 0.5
    np.testing.assert_allclose(centroids(obs[:T]), expected, atol=0.5)


def _bad_inputs(tmp_path, case: str):
    """(sources, the file name the error must show, extra keyword arguments) for one bad input."""
    good = tmp_path / "good.npy"
    np.save(good, square_clip(1)[..., 0])
    bad = tmp_path / {"corrupt gif": "broken.gif", "unknown suffix": "clip.txt", "empty directory": "nothing",
                      "missing path": "gone.npy", "mp4 without av": "clip.mp4"}.get(case, "bad.npy")
    kwargs = {}
    if case == "empty npy":
        np.save(bad, np.zeros((0, SIZE, SIZE), np.uint8))
    elif case == "corrupt gif":
        bad.write_bytes(np.random.default_rng(1).bytes(500))
    elif case == "different frame size":
        np.save(bad, square_clip(1, size=12)[..., 0])
    elif case == "different channels":
        np.save(bad, square_clip(3))
    elif case == "too short":
        np.save(bad, square_clip(1, frames=3)[..., 0])
        kwargs["min_frames"] = 5
    elif case == "unknown suffix":
        bad.write_text("hello")
    elif case == "empty directory":
        bad.mkdir()
        (bad / "readme.txt").write_text("no clips here")
    elif case == "five channels":
        np.save(bad, np.zeros((T, SIZE, SIZE, 5), np.uint8))
    elif case == "int32 values":
        np.save(bad, np.zeros((T, SIZE, SIZE), np.int32))
    elif case == "float above one":
        np.save(bad, np.full((T, SIZE, SIZE), 2.0, np.float32))
    elif case == "mp4 without av":
        bad.write_bytes(b"\0" * 100)
    return [good, bad], bad.name, kwargs


BAD = ["empty npy", "corrupt gif", "different frame size", "different channels", "too short", "unknown suffix",
       "empty directory", "missing path", "five channels", "int32 values", "float above one", "mp4 without av"]


@pytest.mark.parametrize("case", BAD)
def test_bad_inputs_name_the_file_and_leave_nothing(tmp_path, monkeypatch, case):
    sources, name, kwargs = _bad_inputs(tmp_path, case)
    if case == "mp4 without av":
        monkeypatch.setattr(video.importlib.util, "find_spec", lambda module: None)
    out = tmp_path / "out" / "video.h5"
    with pytest.raises(VideoError) as err:
        write_video_dataset(sources, out, image_size=8, progress=False, **kwargs)
    message = str(err.value)
    assert name in message and "\n" not in message
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    if case == "too short":
        assert "3 frames" in message and "at least 5" in message
    if case == "different frame size":
        assert "12x12" in message and "16x16" in message
    if case == "mp4 without av":
        assert "pip install 'amia[video]'" in message


def test_an_existing_output_is_refused_and_kept(tmp_path):
    np.save(tmp_path / "clip.npy", square_clip(1))
    out = tmp_path / "video.h5"
    out.write_bytes(b"keep me")
    with pytest.raises(VideoError, match="video.h5: already exists"):
        write_video_dataset(tmp_path / "clip.npy", out, progress=False)
    assert out.read_bytes() == b"keep me"


def test_clip_paths_take_one_path_or_a_list(tmp_path):
    for name in ("b.gif", "a.npy", "c.mp4", "skip.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.npy").write_bytes(b"")
    assert clip_paths(tmp_path) == [tmp_path / "a.npy", tmp_path / "b.gif", tmp_path / "c.mp4"]
    assert clip_paths(str(tmp_path / "c.mp4")) == [tmp_path / "c.mp4"]
    assert clip_paths([tmp_path / "sub", tmp_path / "a.npy"]) == [tmp_path / "sub" / "d.npy", tmp_path / "a.npy"]
    with pytest.raises(VideoError, match="no clips given"):
        clip_paths([])


def test_read_clip_refuses_an_empty_clip(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, SIZE, SIZE, 3), np.uint8))
    with pytest.raises(VideoError, match=r"empty\.npy: the clip holds no frames"):
        read_clip(tmp_path / "empty.npy")
