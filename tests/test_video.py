"""Learning from frames without actions: the latent action and its regulariser on toys with a known answer,
``amia pretrain`` from a folder of clips, exact resume, and ``amia posttrain`` into an ordinary run.

The runs are tiny (8-dim states, 16x16 frames, a few steps); the toys train a few hundred steps on vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from amia.cli import main as cli_main
from amia.data.collect import CollectConfig, collect
from amia.data.dataset import TrajectoryWriter, read_info, take_episodes
from amia.infra.checkpoint import read_checkpoint
from amia.infra.config import apply_overrides
from amia.infra.run_dir import RunError, load_action_free, load_model
from amia.models.action_free import ActionFreeJEPA, LatentActionConfig
from amia.models.encoder import EncoderConfig
from amia.models.jepa import JEPA, JEPAConfig
from amia.models.predictor import Predictor, PredictorConfig
from amia.training.posttrain import PosttrainConfig, posttrain
from amia.training.world_model import PretrainConfig, TrainConfig, start_from, train

ENV = "amia/TwoRooms-v0"
TINY = ["batch_size=8", "window=4", "val_every=0", "log_every=2", "checkpoint_every=2", "diag_windows=16", "threads=1",
        "warmup=2", "jepa.encoder.dim=8", "jepa.encoder.channels=[4,8]", "jepa.encoder.downsample=4",
        "jepa.predictor.hidden=16", "latent_action.hidden=16"]


def tiny(steps: int = 6) -> PretrainConfig:
    return apply_overrides(PretrainConfig(), [f"steps={steps}", *TINY])


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, restore_threads) -> Path:
    path = tmp_path_factory.mktemp("video") / "data.h5"
    collect(ENV, path, CollectConfig(episodes=10, steps=12, seed=3))
    return path


def weights(run: Path) -> dict[str, torch.Tensor]:
    tensors, _, _ = read_checkpoint(run / "checkpoint.safetensors")
    return tensors


# -- the latent action on toys whose answer is known --------------------------------------------------------------

def fit_toy(moves: int, dim: int, noise: float = 0.05, steps: int = 600, seed: int = 0) -> tuple[float, float, float]:
    """States in R^4 moved by ``moves`` independent uniform displacements per step (the rest fixed); a latent action of
    ``dim`` numbers fitted by ``ActionFreeJEPA.transition_terms``. Returns the one-step error, the error of predicting
    no change, and the best |correlation| of a latent number with the first displacement."""
    torch.manual_seed(seed)
    cfg = JEPAConfig(encoder=EncoderConfig(dim=4, channels=(4,), downsample=4), predictor=PredictorConfig(hidden=64))
    model = ActionFreeJEPA(cfg, (1, 8, 8), LatentActionConfig(dim=dim, hidden=64, noise=noise, l2=0.01))
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if not n.startswith("encoder.")], lr=3e-3)
    g = torch.Generator().manual_seed(seed)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = torch.rand(n, 4, generator=g) * 2 - 1
        d = torch.zeros(n, 4)
        d[:, :moves] = (torch.rand(n, moves, generator=g) * 2 - 1) * 0.5
        return torch.stack([s0, s0 + d], dim=1), d

    for step in range(steps):
        s, _ = batch(256)
        terms = model.transition_terms(s, seed=step)
        opt.zero_grad()
        (terms["pred"] + 0.01 * terms["latent_l2"]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        s, d = batch(2000)
        z = model.latent_actions(s)[:, 0]
        err = (model.predict_windows(s, None)[:, 0] - s[:, 1]).pow(2).sum(-1).mean()
        copy = (s[:, 0] - s[:, 1]).pow(2).sum(-1).mean()
        corr = max(abs(float(torch.corrcoef(torch.stack([z[:, i], d[:, 0]]))[0, 1])) for i in range(dim))
    return float(err), float(copy), corr


def test_a_latent_of_the_right_size_learns_the_missing_action():
    err, copy, corr = fit_toy(moves=1, dim=1)
    assert err < 0.05 * copy, (err, copy)  # the one hidden number is recovered
    assert corr > 0.95, corr  # and the latent is (monotonically) that number


def test_a_latent_too_small_cannot_carry_the_whole_next_state():
    err1, copy1, _ = fit_toy(moves=1, dim=1)
    err2, copy2, _ = fit_toy(moves=2, dim=1)
    # two hidden numbers through one latent: about half the change stays unexplained
    assert err2 > 0.3 * copy2 and err2 > 5 * err1, (err1, err2, copy2)


def test_noise_limits_what_the_latent_carries():
    clean, copy, _ = fit_toy(moves=1, dim=1, noise=0.0)
    noisy, _, _ = fit_toy(moves=1, dim=1, noise=0.5)
    assert noisy > 3 * clean and noisy > 0.05 * copy, (clean, noisy, copy)


def test_action_code_feeds_the_net_a_bounded_code_of_state_and_action():
    p = Predictor(PredictorConfig(hidden=8, action_code=3, action_hidden=5), state_dim=4, action_dim=2)
    assert p.net[0].in_features == 4 + 3 and p.action_map[0].in_features == 4 + 2
    s, a = torch.randn(7, 4), torch.randn(7, 2) * 100
    code = p.code(s, a)
    assert code.shape == (7, 3) and code.abs().max() <= 1
    expected = s + p.net(torch.cat([s, torch.tanh(p.action_map(torch.cat([s, a], -1)))], -1))
    assert torch.allclose(p(s, a), expected)


# -- pretrain and posttrain ---------------------------------------------------------------------------------------

def test_pretrain_resumes_to_the_same_weights(tmp_path, data_file):
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    train(None, whole, tiny(), data=str(data_file), progress=False)
    assert train(None, halves, tiny(), data=str(data_file), progress=False, stop_after=3) == {"stopped_at": 3}
    train(None, halves, tiny(), data=str(data_file), progress=False)
    a, b = weights(whole), weights(halves)
    assert a.keys() == b.keys() and any(k.startswith("model/infer.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_from_a_folder_of_clips(tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):  # a bright square walking across a dark 24x24 frame, one clip per start
        frames = np.zeros((9, 24, 24), np.uint8)
        x, y = rng.integers(2, 14, size=2)
        for t in range(9):
            frames[t, y:y + 4, x + t:x + t + 4] = 255
        np.save(clips / f"clip{i}.npy", frames)
    out = tmp_path / "run"
    assert cli_main(["pretrain", "--video", str(clips), "--out", str(out), "--image-size", "16", "--quiet", "steps=4",
                     *TINY]) == 0
    info = read_info(out / "video.h5")
    assert (info.episodes, info.frames, info.obs_shape, info.action_dim) == (4, 36, (1, 16, 16), 0)
    model, saved = load_action_free(out)
    assert saved["kind"] == "action_free" and model.obs_shape == (1, 16, 16)
    assert "amia posttrain" in capsys.readouterr().out
    with pytest.raises(RunError, match="without actions"):
        load_model(out)
    assert cli_main(["eval", "--run", str(out), "--episodes", "1"]) == 2


def test_a_clip_shorter_than_the_window_is_refused_naming_it(tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    np.save(clips / "long.npy", np.zeros((9, 16, 16), np.uint8))
    np.save(clips / "short.npy", np.zeros((3, 16, 16), np.uint8))
    assert cli_main(["pretrain", "--video", str(clips), "--out", str(tmp_path / "run"), "--quiet", "steps=2",
                     *TINY]) == 2
    assert "short.npy" in capsys.readouterr().err
    assert not (tmp_path / "run" / "video.h5").exists()


def test_posttrain_makes_an_ordinary_run_from_a_few_labelled_episodes(tmp_path, data_file):
    video = tmp_path / "video"
    train(None, video, tiny(), data=str(data_file), progress=False)
    labelled = take_episodes(data_file, tmp_path / "few.h5", 3)
    assert labelled.episodes == 3 and labelled.action_dim == 2
    cfg = PosttrainConfig(steps=6, batch_size=8, window=4, log_every=2, checkpoint_every=2, diag_windows=16, threads=1)
    out = tmp_path / "post"
    metrics = posttrain(video, labelled.path, out, cfg, progress=False)
    assert metrics["labelled_episodes"] == 3 and metrics["pred_error_repr_h12"] > 0
    model, _ = load_model(out)
    pretrained = weights(video)
    after = weights(out)
    # the encoder and the predictor's net are the pretrained ones, untouched; only the action map was trained
    for k in pretrained:
        if k.startswith(("model/encoder.", "model/predictor.net.")):
            assert torch.equal(pretrained[k], after[k]), k
    assert model.predictor.action_map is not None
    assert cli_main(["eval", "--run", str(out), "--episodes", "2", "--quiet", "max_steps=5"]) == 0


def test_posttrain_resumes_to_the_same_weights(tmp_path, data_file):
    video = tmp_path / "video"
    train(None, video, tiny(), data=str(data_file), progress=False)
    cfg = PosttrainConfig(steps=6, batch_size=8, window=4, log_every=2, checkpoint_every=2, diag_windows=16, threads=1)
    posttrain(video, data_file, tmp_path / "whole", cfg, progress=False)
    assert posttrain(video, data_file, tmp_path / "halves", cfg, progress=False, stop_after=3) == {"stopped_at": 3}
    posttrain(video, data_file, tmp_path / "halves", cfg, progress=False)
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "halves")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_posttrain_refuses_frames_of_another_size_and_files_without_actions(tmp_path, data_file):
    video = tmp_path / "video"
    train(None, video, tiny(), data=str(data_file), progress=False)
    other = tmp_path / "maze.h5"
    collect("amia/Maze-v0", other, CollectConfig(episodes=3, steps=6))
    with pytest.raises(RunError, match=r"frames .* are \(2, 96, 96\).*pretrained on \(2, 64, 64\)"):
        posttrain(video, other, tmp_path / "a", PosttrainConfig(steps=2), progress=False)
    info = read_info(data_file)
    frames_only = tmp_path / "frames.h5"
    w = TrajectoryWriter(frames_only, "video", info.obs_shape, 0, [])
    w.add_batch(np.zeros((2, 6, *info.obs_shape), np.uint8), np.zeros((2, 5, 0), np.float32),
                np.zeros((2, 6, 0), np.float32))
    w.close()
    with pytest.raises(RunError, match="has no actions"):
        posttrain(video, frames_only, tmp_path / "b", PosttrainConfig(steps=2), progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_posttrain_refuses_a_run_that_was_trained_with_actions(tmp_path, data_file):
    run = tmp_path / "ordinary"
    cfg = apply_overrides(TrainConfig(), ["steps=2", *[o for o in TINY if not o.startswith("latent_action")]])
    train(ENV, run, cfg, data=str(data_file), progress=False)
    with pytest.raises(RunError, match="not a run trained on frames alone"):
        posttrain(run, data_file, tmp_path / "post", progress=False)


def test_init_starts_a_run_from_the_pretrained_encoder(tmp_path, data_file):
    video = tmp_path / "video"
    train(None, video, tiny(), data=str(data_file), progress=False)
    pretrained = weights(video)
    cfg = apply_overrides(TrainConfig(), ["steps=2", *[o for o in TINY if not o.startswith("latent_action")]])
    model = JEPA(cfg.jepa, (2, 64, 64), 2)
    shared = start_from(model, video)
    expected = {k for k in pretrained if k.startswith(("model/encoder.", "model/predictor.net."))}
    assert {f"model/{k}" for k in shared} == expected - {"model/predictor.net.0.weight"}
    own = model.state_dict()
    for k, v in own.items():
        if k.startswith("encoder."):
            assert torch.equal(v, pretrained[f"model/{k}"]), k
    # the first layer of the predictor sees 4 latent numbers there, 2 actions here: it starts fresh
    assert "predictor.net.0.weight" not in shared
    assert train(ENV, tmp_path / "run", apply_overrides(cfg, [f"init={video}"]), data=str(data_file),
                 progress=False)["steps"] == 2
    wide = apply_overrides(cfg, ["jepa.encoder.dim=16"])
    with pytest.raises(RunError, match="encoder does not fit"):
        start_from(JEPA(wide.jepa, (2, 64, 64), 2), video)


def test_take_episodes_copies_the_first_episodes_exactly(tmp_path, data_file):
    import h5py

    info = take_episodes(data_file, tmp_path / "few.h5", 4)
    src = read_info(data_file)
    end = int(src.episode_offsets[4])
    assert info.episodes == 4 and info.frames == end and info.meta["taken_episodes"] == 4
    with h5py.File(data_file) as a, h5py.File(tmp_path / "few.h5") as b:
        for name in ("obs", "action", "state"):
            assert np.array_equal(a[name][:end], b[name][()]), name
    from amia.data.dataset import DatasetError

    with pytest.raises(DatasetError, match="asked for 11 episodes, the file has 10"):
        take_episodes(data_file, tmp_path / "many.h5", 11)
