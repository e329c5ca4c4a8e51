"""Labelling frames with an inverse model (``amia label``): the context indices by hand, the inverse model on a toy
whose actions are known, and a tiny pretrained run labelled end to end into a file that ``amia train`` takes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from amia.cli import main as cli_main
from amia.data.collect import CollectConfig, collect
from amia.data.dataset import read_info, take_episodes
from amia.infra.config import apply_overrides
from amia.infra.run_dir import RunError, load_model
from amia.models.inverse import Reading, SequenceInverse, action_bin, draw_actions, inverse_loss, joint_bin
from amia.training.inverse_labels import (
    Encoded,
    LabelConfig,
    context_index,
    energy_judge,
    fit,
    fit_pixels,
    infer_actions,
    label_frames,
    mirrored,
    read_rows,
    read_sequence,
    same_side_first,
    segments,
    spread,
)
from amia.training.world_model import PretrainConfig, TrainConfig, train

ENV = "amia/TwoRooms-v0"
TINY = ["steps=4", "batch_size=8", "window=4", "val_every=0", "log_every=2", "checkpoint_every=2", "diag_windows=16",
        "threads=1", "warmup=2", "jepa.encoder.dim=8", "jepa.encoder.channels=[4,8]", "jepa.encoder.downsample=4",
        "jepa.predictor.hidden=16", "latent_action.hidden=16"]


def test_context_index_clamps_each_window_to_its_episode():
    frames, states, transitions = context_index(np.array([0, 3, 7]), context=1)
    # the last frame of each episode (2 and 6) takes no action
    assert frames.tolist() == [0, 1, 3, 4, 5]
    assert states.tolist() == [[0, 0, 1, 2], [0, 1, 2, 2], [3, 3, 4, 5], [3, 4, 5, 6], [4, 5, 6, 6]]
    assert transitions.tolist() == [[0, 0, 1], [0, 1, 1], [3, 3, 4], [3, 4, 5], [4, 5, 5]]


def toy(episodes: int, seed: int, blocked: float = 0.0) -> tuple[Encoded, torch.Tensor, np.ndarray]:
    """States moved by a fixed linear map of smooth 2-D actions (``blocked``: the fraction of steps that move
    nothing, as against a wall)."""
    g = np.random.default_rng(seed)
    steps, dim = 20, 6
    mix = np.random.default_rng(0).normal(size=(2, dim))  # the same world for every call
    actions = np.cumsum(g.normal(size=(episodes, steps, 2)), axis=1) * 0.3
    actions = np.tanh(actions)
    moves = actions @ mix * (g.random((episodes, steps, 1)) >= blocked)
    states = np.concatenate([g.normal(size=(episodes, 1, dim)), moves], axis=1).cumsum(axis=1)
    offsets = np.arange(episodes + 1) * (steps + 1)
    padded = np.concatenate([actions, np.zeros((episodes, 1, 2))], axis=1).reshape(-1, 2)
    frames, si, ti = context_index(offsets, context=1)
    enc = Encoded(torch.tensor(states.reshape(-1, dim), dtype=torch.float32), torch.zeros(len(padded), 0), frames, si, ti)
    return enc, torch.tensor(padded, dtype=torch.float32), offsets


def test_the_inverse_model_reads_known_actions_off_the_states():
    enc, actions, offsets = toy(60, seed=1)
    cfg = LabelConfig(context=1, latent=False, hidden=64, steps=800, batch_size=128, weight_decay=0.0, val_fraction=0.2)
    _, report = fit(enc, actions, offsets, cfg, torch.device("cpu"), progress=False)
    assert report["val_r2"] > 0.93, report
    # with a tenth of the steps it has not learned them yet: the number measures the fit, not the data
    _, short = fit(enc, actions, offsets, LabelConfig(**{**cfg.__dict__, "steps": 5}), torch.device("cpu"), False)
    assert short["val_r2"] < 0.8 < report["val_r2"], (short, report)


def test_context_recovers_the_actions_of_blocked_steps():
    enc, actions, offsets = toy(120, seed=2, blocked=0.3)
    base = dict(latent=False, hidden=64, steps=1500, batch_size=128, weight_decay=0.0, val_fraction=0.2)
    scores = {}
    for c in (0, 2):
        frames, si, ti = context_index(offsets, c)
        e = Encoded(enc.states, enc.latents, frames, si, ti)
        scores[c] = fit(e, actions, offsets, LabelConfig(context=c, **base), torch.device("cpu"), False)[1]["val_r2"]
    # a blocked step shows no move; the smooth actions around it tell what was pushed
    assert scores[0] < 0.8 and scores[2] > scores[0] + 0.1, scores


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, restore_threads) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("label")
    data = root / "data.h5"
    collect(ENV, data, CollectConfig(episodes=8, steps=12, seed=5))
    train(None, root / "video", apply_overrides(PretrainConfig(), TINY), data=str(data), progress=False)
    return root / "video", data


def test_label_writes_the_labelled_episodes_then_the_frames_with_actions(tmp_path, pretrained):
    video, data = pretrained
    few = take_episodes(data, tmp_path / "few.h5", 3)
    out = tmp_path / "labelled.h5"
    report = label_frames(video, few.path, out, cfg=LabelConfig(steps=20, batch_size=16, val_fraction=0.34,
                                                                threads=1), progress=False)
    info, source = read_info(out), read_info(data)
    assert info.episodes == source.episodes + 3 and info.env_id == ENV and info.action_dim == 2
    assert info.state_names == source.state_names
    with h5py.File(out, "r") as f, h5py.File(data, "r") as g:
        n = few.frames  # the labelled episodes first (training holds out a file's last episodes) ...
        assert np.array_equal(f["obs"][:n], g["obs"][:n]) and np.array_equal(f["action"][:n], g["action"][:n])
        assert np.array_equal(f["obs"][n:], g["obs"][()])  # ... then the frames, unchanged
        inferred = f["action"][n:]
        ends = source.episode_offsets[1:] - 1
        assert np.all(inferred[ends] == 0) and np.all(np.abs(inferred) <= source.action_max + 1e-5)
        assert np.abs(np.delete(inferred, ends, axis=0)).min(axis=1).max() > 0
    assert -1 < report["frames_r2"] <= 1 and "val_r2" in report["inverse_model"]
    assert json_meta(out)["labelled_by"]["labelled_episodes"] == 3
    with pytest.raises(RunError, match="exists"):
        label_frames(video, few.path, out, progress=False)


def json_meta(path: Path) -> dict:
    return read_info(path).meta


def test_label_from_the_command_line_then_train_on_it(tmp_path, pretrained, capsys):
    video, data = pretrained
    few = take_episodes(data, tmp_path / "few.h5", 3)
    out = tmp_path / "labelled.h5"
    assert cli_main(["label", "--run", str(video), "--data", str(few.path), "--out", str(out), "--quiet", "steps=10",
                     "batch_size=8", "val_fraction=0.34", "threads=1"]) == 0
    assert "inverse model: r2" in capsys.readouterr().out
    cfg = [o for o in TINY if not o.startswith("latent_action")]
    assert cli_main(["train", "--data", str(out), "--out", str(tmp_path / "run"), "--quiet", *cfg]) == 0


def test_label_refuses_files_without_actions_and_directories_that_are_not_runs(tmp_path, pretrained):
    video, data = pretrained
    with pytest.raises(RunError, match="has no actions"):
        label_frames(video, frames_only(tmp_path, data), tmp_path / "x.h5", progress=False)
    with pytest.raises(RunError, match="not a run directory"):
        label_frames(tmp_path / "nothing", data, tmp_path / "y.h5", progress=False)
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()


def test_a_second_round_labels_with_the_states_of_a_run_trained_on_the_first(tmp_path, pretrained):
    video, data = pretrained
    few = take_episodes(data, tmp_path / "few.h5", 3)
    first = tmp_path / "first.h5"
    label_frames(video, few.path, first, frames=data, cfg=LabelConfig(steps=5, val_fraction=0.34, threads=1),
                 progress=False)
    cfg = apply_overrides(TrainConfig(), [o for o in TINY if not o.startswith("latent_action")])
    train(None, tmp_path / "round1", cfg, data=str(first), progress=False)
    second = tmp_path / "second.h5"
    report = label_frames(tmp_path / "round1", few.path, second, frames=data,
                          cfg=LabelConfig(steps=5, val_fraction=0.34, threads=1), progress=False)
    # an ordinary run has no latent actions: the inverse model reads its states alone
    assert read_info(second).episodes == read_info(data).episodes + 3 and "val_r2" in report["inverse_model"]


def frames_only(tmp_path: Path, data: Path) -> Path:
    from amia.data.dataset import TrajectoryWriter

    info = read_info(data)
    path = tmp_path / "frames.h5"
    w = TrajectoryWriter(path, "video", info.obs_shape, 0, [])
    w.add_batch(np.zeros((2, 6, *info.obs_shape), np.uint8), np.zeros((2, 5, 0), np.float32),
                np.zeros((2, 6, 0), np.float32))
    w.close()
    return path


def test_segments_cut_episodes_at_the_transitions_left_out():
    offsets = np.array([0, 5, 9])
    keep = np.ones(9, bool)
    keep[[1, 5]] = False  # episode 0 loses transition 1->2, episode 1 its first, 5->6
    # frame 4 and 8 end their episodes (no transition); a piece needs two frames
    assert segments(offsets, keep) == [(0, 2), (2, 5), (6, 9)]
    keep[[2, 3]] = False
    assert segments(offsets, keep) == [(0, 2), (6, 9)]


def blob_frames(pos: np.ndarray, actions: np.ndarray, moved: np.ndarray, size: int):
    """A blob's positions ``(E, T + 1, 2)`` drawn as ``size``-pixel frames; with its ``actions (E, T, 2)`` and
    which steps ``moved (E, T)``, as the toys return them (``Encoded``, actions and moved padded per frame)."""
    episodes, steps = moved.shape
    grid = np.arange(size) + 0.5
    d2 = (grid[None, None, None, :] - pos[..., 0, None, None]) ** 2 + \
        (grid[None, None, :, None] - pos[..., 1, None, None]) ** 2
    obs = (255 * np.exp(-d2 / (2 * 1.2**2))).round().astype(np.uint8).reshape(-1, 1, size, size)
    offsets = np.arange(episodes + 1) * (steps + 1)
    padded = np.concatenate([actions, np.zeros((episodes, 1, 2))], axis=1).reshape(-1, 2)
    moved = np.concatenate([moved, np.zeros((episodes, 1), bool)], axis=1).reshape(-1)
    frames, si, ti = context_index(offsets, context=0)
    enc = Encoded(torch.zeros(len(obs), 0), torch.zeros(len(obs), 0), frames, si, ti, torch.from_numpy(obs))
    return enc, torch.tensor(padded, dtype=torch.float32), offsets, moved


def blob_toy(episodes: int, seed: int, size: int = 16, steps: int = 12, blocked: float = 0.3):
    """A Gaussian blob moved by smooth 2-D actions of up to one pixel; a ``blocked`` share of the steps moves
    nothing. Returns ``Encoded`` holding the frames, the actions and which steps moved."""
    g = np.random.default_rng(seed)
    actions = np.tanh(np.cumsum(g.normal(size=(episodes, steps, 2)), axis=1) * 0.5)
    moved = g.random((episodes, steps)) >= blocked
    start = g.uniform(4, size - 4, (episodes, 1, 2))
    pos = np.concatenate([start, start + np.cumsum(actions * moved[..., None], axis=1)], axis=1)
    pos = np.clip(pos, 1, size - 2)
    return blob_frames(pos, actions, moved, size)


def test_the_pixel_inverse_model_reads_moves_and_knows_when_it_cannot(restore_threads):
    torch.set_num_threads(1)
    enc, actions, offsets, moved = blob_toy(120, seed=3)
    cfg = LabelConfig(reads="pixels", keypoints=8, width=8, hidden=64, steps=1200, batch_size=64, lr=3e-3,
                      weight_decay=0.0, val_fraction=0.25, max_std=0.2)
    model, report = fit(enc, actions, offsets, cfg, torch.device("cpu"), progress=False)
    mean, log_std, _ = read_rows(model, enc, np.arange(len(enc.frames)), torch.device("cpu"))
    target, went = actions[enc.frames], moved[enc.frames]
    episode = np.searchsorted(offsets, enc.frames, side="right") - 1
    held = episode >= 90  # the held-out quarter
    err = (mean - target).pow(2).sum(1).sqrt().numpy()
    # where the blob moved, its action is read to a fraction of its one-pixel reach (guessing 0: about 0.6)
    assert np.median(err[held & went]) < 0.2, np.median(err[held & went])
    # where it did not, the action is not in the frames: the spread says so
    std = spread(log_std).numpy()
    assert np.median(std[held & ~went]) > 2 * np.median(std[held & went]), (std[held & ~went], std[held & went])
    assert report["val_sure_r2"] > report["val_r2"] + 0.1 and 0.4 < report["val_sure_fraction"] < 0.95, report


def test_the_windowed_pixel_head_reads_blocked_steps_from_their_neighbours(restore_threads):
    torch.set_num_threads(1)
    enc, actions, offsets, moved = blob_toy(120, seed=4)
    cfg = LabelConfig(reads="pixels", keypoints=8, width=8, hidden=64, steps=1200, head_steps=1500, batch_size=64,
                      lr=3e-3, weight_decay=0.0, val_fraction=0.25)
    cpu = torch.device("cpu")
    errors = {}
    for context in (0, 2):
        model, report = fit_pixels(enc, actions, offsets, replace(cfg, context=context), cpu, progress=False)
        if context:  # the net was fitted once on single transitions, then left as it was
            assert "single_transition" in report and not any(p.requires_grad for p in model.conv.parameters())
        frames, si, ti = context_index(offsets, context)
        with torch.no_grad():
            points = Encoded(model.keypoints(enc.obs), torch.zeros(len(enc.obs), 0), frames, si, ti)
        mean = read_rows(model, points, np.arange(len(frames)), cpu).mean
        episode = np.searchsorted(offsets, frames, side="right") - 1
        blocked = (episode >= 90) & ~moved[frames]
        errors[context] = float(np.median((mean - actions[frames]).pow(2).sum(1).sqrt().numpy()[blocked]))
    # a blocked step shows no move; its neighbours' smooth actions say what was pushed
    assert errors[2] < 0.7 * errors[0], errors


def test_label_from_the_pixels_needs_no_pretrained_run_and_cuts_at_unsure_steps(tmp_path, pretrained, capsys):
    _, data = pretrained
    few = take_episodes(data, tmp_path / "few.h5", 3)
    out = tmp_path / "labelled.h5"
    args = ["label", "--data", str(few.path), "--frames", str(data), "--out", str(out), "--quiet", "reads=pixels",
            "steps=10", "batch_size=8", "val_fraction=0.34", "threads=1", "keypoints=4", "width=4"]
    assert cli_main([*args, "max_std=1e-6"]) == 0
    printed = capsys.readouterr().out
    assert "kept 0.0% of the transitions" in printed and "init=" not in printed
    # nothing of the frames is sure enough: only the labelled episodes, with their own actions
    info = read_info(out)
    assert info.episodes == 3 and info.meta["labelled_by"]["pretrained"] is None
    with h5py.File(out, "r") as f, h5py.File(few.path, "r") as g:
        assert np.array_equal(f["action"][()], g["action"][()])
    out2 = tmp_path / "all.h5"
    assert cli_main([*args[:6], str(out2), *args[7:], "copies=2"]) == 0
    both = read_info(out2)
    assert both.episodes == read_info(data).episodes + 2 * 3  # the labelled episodes twice, then every frame
    with h5py.File(out2, "r") as f, h5py.File(few.path, "r") as g:
        n = few.frames
        assert np.array_equal(f["action"][:n], g["action"][()]) and np.array_equal(f["action"][n:2 * n], g["action"][()])
    with pytest.raises(RunError, match="--frames"):
        label_frames(None, few.path, tmp_path / "z.h5", cfg=LabelConfig(reads="pixels"), progress=False)
    with pytest.raises(RunError, match="needs a pretrained run"):
        label_frames(None, few.path, tmp_path / "z.h5", frames=data, progress=False)


def test_binned_actions_fall_in_the_bins_their_logits_name():
    assert action_bin(torch.tensor([-1.0, -0.61, -0.59, 0.0, 0.99, 1.0, 3.0]), 5).tolist() == [0, 0, 1, 2, 4, 4, 4]
    logits = torch.full((300, 2, 5), -1e9)
    logits[:, 0, 1] = 0.0  # dimension 0: always bin 1, [-0.6, -0.2)
    logits[:, 1, 3] = logits[:, 1, 4] = 0.0  # dimension 1: bins 3 and 4 alike, [0.2, 1)
    a = draw_actions(logits, torch.Generator().manual_seed(0))
    assert ((a[:, 0] >= -0.6) & (a[:, 0] < -0.2)).all() and ((a[:, 1] >= 0.2) & (a[:, 1] < 1)).all()
    assert 0.4 < (a[:, 1] >= 0.6).float().mean() < 0.6  # the two bins drawn about equally
    assert a[:, 0].std() > 0.08  # uniform within the bin (width 0.4: std 0.115), not its centre


def test_unsure_transitions_get_the_draw_the_judge_picks(restore_threads):
    torch.set_num_threads(1)
    enc, actions, offsets, moved = blob_toy(40, seed=5)
    cfg = LabelConfig(reads="pixels", keypoints=8, width=8, hidden=64, steps=300, batch_size=64, lr=3e-3,
                      weight_decay=0.0, bins=7, max_std=0.15, draws=3)
    model, _ = fit(enc, actions, offsets, cfg, torch.device("cpu"), progress=False)
    mean, log_std, logits = read_rows(model, enc, np.arange(len(enc.frames)), torch.device("cpu"))
    unsure = spread(log_std) > cfg.max_std
    assert 0 < unsure.sum() < len(unsure)
    seen = {}

    def largest_x(frames: np.ndarray, draws: torch.Tensor) -> torch.Tensor:
        seen["frames"], seen["draws"] = frames, draws
        return draws[draws[..., 0].argmax(0), torch.arange(draws.shape[1])]

    out, std = infer_actions(model, enc, len(actions), torch.device("cpu"), cfg, largest_x)
    assert np.array_equal(seen["frames"], enc.frames[unsure.numpy()]) and seen["draws"].shape[0] == 3
    labels = out[enc.frames]
    assert torch.equal(labels[~unsure], mean[~unsure])  # the sure ones keep the mean
    assert torch.equal(labels[unsure][:, 0], seen["draws"][..., 0].max(0).values)
    assert torch.allclose(std[enc.frames], spread(log_std))
    # keep_direction: the mean's direction, the picked draw's length (clipped to the box)
    kept, _ = infer_actions(model, enc, len(actions), torch.device("cpu"), replace(cfg, keep_direction=True), largest_x)
    picked, m = labels[unsure], mean[unsure]
    k = kept[enc.frames][unsure]
    cos = (k * m).sum(1) / (k.norm(dim=1) * m.norm(dim=1))
    inside = (m / m.norm(dim=1, keepdim=True) * picked.norm(dim=1, keepdim=True)).abs().max(1).values <= 1
    assert inside.float().mean() > 0.5 and (cos[inside] > 0.9999).all() and (k.abs() <= 1).all()
    assert torch.allclose(k.norm(dim=1)[inside], picked.norm(dim=1)[inside], atol=1e-5)


def test_the_energy_judge_keeps_the_draw_the_world_model_predicts_best(tmp_path, pretrained):
    _, data = pretrained
    cfg = apply_overrides(TrainConfig(), [o for o in TINY if not o.startswith("latent_action")])
    train(None, tmp_path / "run", cfg, data=str(data), progress=False)
    info = read_info(data)
    mid, half = np.zeros(2, np.float32), np.full(2, info.action_max, np.float32)
    judge = energy_judge(tmp_path / "run", info, mid, half, torch.device("cpu"), progress=False)
    frames = context_index(info.episode_offsets, 0)[0][::3]
    draws = torch.rand(5, len(frames), 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    picked = judge(frames, draws)
    world, _ = load_model(tmp_path / "run")
    with h5py.File(data, "r") as f, torch.no_grad():
        obs = torch.from_numpy(np.stack([f["obs"][frames], f["obs"][frames + 1]], axis=1))
        s = world.encoder.encode(obs)
        energy = torch.stack([(world.predict_windows(s, d[:, None] * info.action_max) - s[:, 1:]).pow(2).mean((1, 2))
                              for d in draws])
    best = energy.argmin(0)
    assert torch.equal(picked, draws[best, torch.arange(len(frames))])
    assert len(set(best.tolist())) > 1  # not simply the first draw
    # accept: the first draw within `accept` times the energy of no action (or of the best draw, where that is
    # larger); `accept` such that the first draw passes for half of the transitions
    with torch.no_grad():
        zero = (world.predict_windows(s, torch.zeros(len(frames), 1, 2)) - s[:, 1:]).pow(2).mean((1, 2))
    accept = float((energy[0] / zero).median())
    bar = torch.maximum(accept * zero, energy.min(0).values)
    first = torch.tensor([int(np.flatnonzero((energy[:, i] <= bar[i] * (1 + 1e-5)).numpy())[0]) for i in range(len(frames))])
    accepted = energy_judge(tmp_path / "run", info, mid, half, torch.device("cpu"), progress=False, accept=accept)(frames, draws)
    assert torch.equal(accepted, draws[first, torch.arange(len(frames))])
    assert (first == 0).any() and (first > 0).any() and (first != best).any()


def test_joint_bins_by_hand_and_draws_in_the_cell_their_logits_name():
    # 5 bins a dimension, dimension 0 fastest: (bin 1, bin 3) is cell 1 + 3 * 5 = 16
    assert joint_bin(torch.tensor([[-0.5, 0.3], [-1.0, -1.0], [1.0, 0.99]]), 5).tolist() == [16, 0, 24]
    logits = torch.full((400, 1, 25), -1e9)
    logits[:, 0, 16] = 0.0
    a = draw_actions(logits, torch.Generator().manual_seed(0), action_dim=2)
    assert ((a[:, 0] >= -0.6) & (a[:, 0] < -0.2) & (a[:, 1] >= 0.2) & (a[:, 1] < 0.6)).all()
    # the joint cross-entropy is that of the target's cell
    target = torch.tensor([[-0.5, 0.3], [0.9, -0.9]])
    reading = Reading(torch.zeros(2, 2), torch.zeros(2, 2), torch.randn(2, 1, 25, generator=torch.Generator().manual_seed(1)))
    by_hand = torch.nn.functional.cross_entropy(reading.logits[:, 0], torch.tensor([16, 4]))
    base = inverse_loss(Reading(reading.mean, reading.log_std, torch.zeros(2, 2, 0)), target)
    assert torch.allclose(inverse_loss(reading, target), base + by_hand)


def test_a_joint_distribution_keeps_the_shape_of_a_set_that_per_dimension_bins_lose():
    # actions uniform in the half of the box where x + y < 0 (a push into a wall at 45 degrees): fitted per
    # dimension, independent draws land in it 83% of the time; fitted jointly on a 10 x 10 grid, 95% (the diagonal
    # cells are half inside: a tenth of the mass, half of it drawn outside)
    g = torch.Generator().manual_seed(0)
    pushes = torch.rand(20000, 2, generator=g) * 2 - 1
    pushes = pushes[pushes.sum(1) < 0]
    inside = {}
    for joint, cells in ((False, (2, 10)), (True, (1, 100))):
        logits = torch.zeros(1, *cells, requires_grad=True)
        opt = torch.optim.Adam([logits], lr=0.1)
        for _ in range(300):
            reading = Reading(torch.zeros(len(pushes), 2), torch.zeros(len(pushes), 2), logits.expand(len(pushes), *cells))
            loss = inverse_loss(reading, pushes)
            opt.zero_grad()
            loss.backward()
            opt.step()
        draws = draw_actions(logits.detach().expand(4000, *cells), g, action_dim=2)
        inside[joint] = float((draws.sum(1) < 0).float().mean())
    assert 0.78 < inside[False] < 0.88 and inside[True] > 0.93, inside


def long_blocks_toy(episodes: int, seed: int, size: int = 16, steps: int = 14):
    """A blob pushed by one action per episode (of up to one pixel a dimension), which a wall stops for steps 3-10:
    the action of a blocked step in the middle is shown only by moves 4 or more steps away."""
    g = np.random.default_rng(seed)
    actions = np.repeat(g.uniform(-1, 1, (episodes, 1, 2)), steps, axis=1)
    moved = np.ones((episodes, steps), bool)
    moved[:, 3:11] = False
    start = g.uniform(6, size - 6, (episodes, 1, 2))
    pos = np.concatenate([start, start + np.cumsum(actions * moved[..., None], axis=1)], axis=1)
    return blob_frames(pos, actions, moved, size)


def test_the_sequence_head_reads_a_long_blocked_run_from_its_ends(restore_threads):
    torch.set_num_threads(1)
    enc, actions, offsets, moved = long_blocks_toy(80, seed=6)
    cfg = LabelConfig(reads="pixels", keypoints=8, width=8, hidden=64, steps=800, head_steps=600, batch_size=64,
                      lr=3e-3, weight_decay=0.0, val_fraction=0.25, crop=14)
    cpu = torch.device("cpu")
    frames = context_index(offsets, 0)[0]
    episode = np.searchsorted(offsets, frames, side="right") - 1
    t = frames - offsets[episode]
    middle = (episode >= 60) & (t >= 5) & (t <= 8)  # held out, 2 or more blocked steps from either end
    errors = {}
    for head, context in (("window", 2), ("sequence", 0)):
        model, report = fit_pixels(enc, actions, offsets, replace(cfg, head=head, context=context), cpu, progress=False)
        assert not any(p.requires_grad for p in model.conv.parameters())
        with torch.no_grad():
            points = model.keypoints(enc.obs)
        if head == "sequence":
            mean = read_sequence(model, points, offsets, cpu).mean
            assert np.isfinite(report["val_r2"])
        else:
            f, si, ti = context_index(offsets, context)
            mean = read_rows(model, Encoded(points, torch.zeros(len(points), 0), f, si, ti), np.arange(len(f)), cpu).mean
        errors[head] = float(np.median((mean - actions[frames]).pow(2).sum(1).sqrt().numpy()[middle]))
    # guessing 0 is off by about 0.8; the window sees only blocked steps there, the sequence sees the run's ends
    assert errors["sequence"] < 0.5 * errors["window"], errors


def test_label_with_a_sequence_head_and_joint_bins_end_to_end(tmp_path, pretrained):
    _, data = pretrained
    few = take_episodes(data, tmp_path / "few.h5", 3)
    cfg = LabelConfig(reads="pixels", head="sequence", bins=5, joint=True, max_std=1e-6, steps=5, head_steps=5,
                      crop=4, batch_size=8, val_fraction=0.34, threads=1, keypoints=4, width=4, hidden=8)
    out = tmp_path / "labelled.h5"
    report = label_frames(None, few.path, out, frames=data, cfg=cfg, progress=False)
    info = read_info(out)
    assert info.episodes == read_info(data).episodes + 3 and report["drawn_transitions"] == 1.0
    with h5py.File(out, "r") as f:
        acts = f["action"][few.frames:]
    # every transition drawn from a cell of the box (the last frame of each episode takes no action)
    assert np.abs(acts).max() <= info.action_max + 1e-5 and np.abs(acts).max() > 0
    with pytest.raises(ValueError, match="reads=pixels"):
        LabelConfig(head="sequence")
    with pytest.raises(ValueError, match="set bins"):
        LabelConfig(joint=True)
    with pytest.raises(RunError, match=r"bins=70: 4900 cells .*few.h5"):
        label_frames(None, few.path, tmp_path / "z.h5", frames=data, cfg=replace(cfg, bins=70), progress=False)


def test_same_side_keeps_the_draws_within_90_degrees_of_the_mean_by_hand():
    draws = torch.tensor([[[-1.0, 0.5], [0.3, -0.4]],
                          [[0.5, 0.2], [0.1, -0.9]],
                          [[-0.2, -0.1], [-0.5, -0.5]]])  # (K=3 draws, M=2 transitions, A=2)
    mean = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = same_side_first(draws, mean)
    # transition 0: only the second draw points within 90 degrees of (1, 0); it fills every slot
    assert torch.equal(out[:, 0], torch.tensor([[0.5, 0.2]] * 3))
    # transition 1: none does; the first draw's length (0.5) in the mean's direction
    assert torch.allclose(out[0, 1], torch.tensor([0.0, 0.5]))


def test_mirrored_follows_each_episode_with_its_mirror_images_by_hand():
    obs = torch.arange(5 * 6, dtype=torch.uint8).view(5, 1, 2, 3)  # episodes of 2 and 3 frames
    actions = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, 4.0], [5.0, 6.0], [0.0, 0.0]])
    offsets = np.array([0, 2, 5])
    o, a, off = mirrored(obs, actions, offsets, mirror_x=0, mirror_y=-1)
    assert off.tolist() == [0, 2, 4, 7, 10]
    assert torch.equal(o[2:4], obs[0:2].flip(-1)) and torch.equal(o[4:7], obs[2:5])  # episode 0 mirrored, then episode 1
    assert a[2:4].tolist() == [[-1.0, 2.0], [0.0, 0.0]] and torch.equal(a[7:10, 1], actions[2:5, 1])
    o, a, off = mirrored(obs, actions, offsets, mirror_x=0, mirror_y=1)
    assert off.tolist() == [0, 2, 4, 6, 8, 11, 14, 17, 20]
    assert torch.equal(o[6:8], obs[0:2].flip([-1, -2])) and a[6].tolist() == [-1.0, -2.0] and a[4].tolist() == [1.0, -2.0]
    same = mirrored(obs, actions, offsets, -1, -1)
    assert same[0] is obs and same[1] is actions
    with pytest.raises(ValueError, match="reads=pixels"):
        LabelConfig(mirror_x=0)


def test_the_rooms_are_their_own_mirror_images_with_the_actions_negated():
    # what makes mirror_x=0 mirror_y=1 right for amia/TwoRooms-v0: the mirrored frame of a state is the frame of
    # the mirrored state, and the mirrored action moves it to the mirrored next state (walls included)
    from amia.envs import make_world

    g = np.random.default_rng(0)
    world, mirror = make_world(ENV, 256), make_world(ENV, 256)
    world.reset(seed=1)
    start = world.state.copy()
    size = world.spec.size
    for flip, dim in (([-1], 0), ([-2], 1)):
        reflected = start.copy()
        reflected[:, dim] = size - start[:, dim]
        world.set_state(start)
        mirror.set_state(reflected)
        assert np.array_equal(np.flip(world.render(), flip), mirror.render())
        action = g.uniform(-2.45, 2.45, (256, 2)) * 3  # long pushes, many stopped by a wall
        world.step(action)
        flipped = action.copy()
        flipped[:, dim] = -flipped[:, dim]
        mirror.step(flipped)
        expected = world.state[:, :2].copy()
        expected[:, dim] = size - expected[:, dim]
        assert np.allclose(mirror.state[:, :2], expected, atol=1e-4)


def test_the_sequence_head_without_positions_reads_only_moves():
    conv = torch.nn.Conv2d(1, 4, 3)
    points = torch.randn(3, 7, 8)
    shifted = points + torch.tensor([0.3, -0.2] * 4)  # every keypoint moved by the same amount, every frame
    for positions in (False, True):
        torch.manual_seed(0)
        model = SequenceInverse(conv, 4, 2, hidden=16, positions=positions)
        same = torch.allclose(model(points).mean, model(shifted).mean, atol=1e-6)
        assert same == (not positions)
