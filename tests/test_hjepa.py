"""H-JEPA level 2: the data pipeline on hand-built tensors, the abstract actions, the loss, training, resume, load.

Runs are tiny (8-dim level-1 states, 16x16 frames, stride 4, 3 level-2 steps) so the file runs in well under a
minute on two CPU cores; the data and the finished level-1 run are made once per module.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from amia.cli import main as cli_main
from amia.data.blocks import action_blocks, pool_span, stride_blocks
from amia.data.collect import CollectConfig, collect
from amia.data.encode import EncodedTrajectories, window_starts
from amia.infra.checkpoint import CheckpointError, read_checkpoint
from amia.infra.config import ConfigError, apply_overrides
from amia.infra.run_dir import LEVEL2 as LEVEL2_FILE
from amia.infra.run_dir import LEVEL2_SUMMARY as SUMMARY_FILE
from amia.infra.run_dir import RunError, load_level2, load_level2_critic
from amia.models.encoder import EncoderConfig
from amia.models.jepa import JEPAConfig
from amia.models.level2 import ActionEncoder, HJEPAConfig, Level2
from amia.models.predictor import PredictorConfig
from amia.models.probe import LinearProbe
from amia.training.level2 import level2_horizon_report, train_level2
from amia.training.world_model import TrainConfig, train

ENV = "amia/TwoRooms-v0"
L2_STEPS = 6

pytestmark = pytest.mark.usefixtures("restore_threads")


def tiny_level1(steps: int = 8) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=8, window=4, val_every=0, log_every=2, checkpoint_every=2,
                       diag_windows=16, threads=1, warmup=2,
                       jepa=JEPAConfig(encoder=EncoderConfig(dim=8, channels=(4, 8), downsample=4),
                                       predictor=PredictorConfig(hidden=16)))


def tiny_level2(**kw) -> HJEPAConfig:
    base = dict(stride=4, horizon=3, dim=6, action_dim=2, encoder_hidden=16, action_hidden=16,
                predictor=PredictorConfig(hidden=16), steps=L2_STEPS, batch_size=8, warmup=2, log_every=2,
                checkpoint_every=2, report_steps=12, report_windows=8, threads=1)
    return HJEPAConfig(**{**base, **kw})


# The same tiny level 2 as command-line overrides.
LEVEL2_OVERRIDES = ["level2.stride=4", "level2.horizon=3", "level2.dim=6", "level2.action_dim=2",
                    "level2.encoder_hidden=16", "level2.action_hidden=16", "level2.predictor.hidden=16",
                    f"level2.steps={L2_STEPS}", "level2.batch_size=8", "level2.warmup=2", "level2.log_every=2",
                    "level2.checkpoint_every=2", "level2.report_steps=12", "level2.report_windows=8", "level2.threads=1"]
CRITIC2_OVERRIDES = ["critic2.steps=5", "critic2.batch_size=16", "critic2.hidden=8", "critic2.layers=1",
                     "critic2.log_every=1", "critic2.checkpoint_every=2"]
LEVEL1_OVERRIDES = ["steps=8", "batch_size=8", "window=4", "val_every=0", "log_every=2", "checkpoint_every=2",
                    "diag_windows=16", "threads=1", "warmup=2", "jepa.encoder.dim=8", "jepa.encoder.channels=[4,8]",
                    "jepa.encoder.downsample=4", "jepa.predictor.hidden=16"]


def level2_tensors(run: Path, prefix: str = "model/") -> dict[str, torch.Tensor]:
    tensors, _, _ = read_checkpoint(run / LEVEL2_FILE)
    return {k: v for k, v in tensors.items() if k.startswith(prefix)}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    assert not [k for k in a if not torch.equal(a[k], b[k])]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tworooms.h5"
    collect(ENV, path, CollectConfig(episodes=10, steps=30, batch=10), progress=False)
    return path


@pytest.fixture(scope="module")
def level1_run(tmp_path_factory, data_file) -> Path:
    """A finished tiny level-1 run (read-only for the tests; copy it before changing anything)."""
    run = tmp_path_factory.mktemp("l1") / "run"
    train(ENV, run, tiny_level1(), data=str(data_file), progress=False)
    return run


@pytest.fixture(scope="module")
def level2_run(tmp_path_factory, level1_run) -> tuple[Path, dict]:
    """The level-1 run plus an uninterrupted tiny level 2 (read-only)."""
    run = tmp_path_factory.mktemp("l2") / "run"
    shutil.copytree(level1_run, run)
    return run, train_level2(run, tiny_level2(), progress=False)


def fresh_copy(src: Path, tmp_path: Path, keep_level2: bool = False) -> Path:
    run = tmp_path / "run"
    shutil.copytree(src, run)
    if not keep_level2:
        for name in (LEVEL2_FILE, SUMMARY_FILE):
            (run / name).unlink(missing_ok=True)
    return run


# --------------------------------------------------------------------------------------------- data pipeline


def test_stride_blocks_first_takes_every_kth_state():
    k, m, d = 4, 2, 3
    states = torch.arange(2 * (m * k + 1) * d, dtype=torch.float32).reshape(2, m * k + 1, d)
    blocks = stride_blocks(states, k, "first")
    assert blocks.shape == (2, m + 1, 1, d)
    for j in range(m + 1):
        assert torch.equal(blocks[:, j, 0], states[:, j * k])
    assert blocks[1, 2, 0].tolist() == [51.0, 52.0, 53.0]  # batch 1 starts at 27; frame 8 -> 27 + 24


def test_stride_blocks_mean_takes_the_k_states_ending_at_each_boundary():
    k, m = 4, 2
    t = torch.arange((m + 1) * k, dtype=torch.float32)  # state value = frame index (D = 2: t and 10 t)
    states = torch.stack([t, 10 * t], dim=-1)[None]  # (1, 12, 2)
    blocks = stride_blocks(states, k, "mean")
    assert blocks.shape == (1, m + 1, k, 2)
    assert blocks[0, :, :, 0].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert blocks.mean(dim=2)[0].tolist() == [[1.5, 15.0], [5.5, 55.0], [9.5, 95.0]]
    assert pool_span(k, "mean") == k and pool_span(k, "first") == 1


def test_stride_blocks_wrong_length_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(B, M\*4 \+ 1, D\).*\(2, 10, 3\)"):
        stride_blocks(torch.zeros(2, 10, 3), 4, "first")
    with pytest.raises(ValueError, match=r"\(B, M\*4 \+ 4, D\)"):
        stride_blocks(torch.zeros(2, 9, 3), 4, "mean")
    with pytest.raises(ValueError, match="pool"):
        stride_blocks(torch.zeros(2, 9, 3), 4, "max")


def test_action_blocks_flatten_k_actions_in_time_order():
    actions = torch.arange(8, dtype=torch.float32).reshape(1, 4, 2)  # 4 steps of 2-D actions
    blocks = action_blocks(actions, 2)
    assert blocks.shape == (1, 2, 4)
    assert blocks[0].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    big = torch.randn(3, 12, 2)
    assert torch.equal(action_blocks(big, 4)[:, 1], big[:, 4:8].reshape(3, 8))
    with pytest.raises(ValueError, match=r"\(B, M\*4, A\).*\(3, 10, 2\)"):
        action_blocks(big[:, :10], 4)


def test_window_starts_stay_inside_one_episode():
    offsets = np.array([0, 5, 12, 14])  # episodes of 5, 7 and 2 frames
    assert window_starts(offsets, np.arange(3), 4).tolist() == [0, 1, 5, 6, 7, 8]
    assert window_starts(offsets, np.array([1]), 4).tolist() == [5, 6, 7, 8]
    assert window_starts(offsets, np.array([2, 0]), 2).tolist() == [0, 1, 2, 3, 12]
    with pytest.raises(ValueError, match="8 frames.*longest: 7"):
        window_starts(offsets, np.arange(3), 8)


def test_level1_cache_gathers_windows_of_states_actions_positions():
    n = 10
    cache = EncodedTrajectories(torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 3),
                                100 + torch.arange(2 * n).reshape(n, 2).float(),
                                torch.arange(2 * n).reshape(n, 2).float(), np.array([0, n]))
    w = cache.windows(np.array([2, 5]), 4)
    assert w["states"].shape == (2, 4, 3) and w["actions"].shape == (2, 3, 2) and w["position"].shape == (2, 4, 2)
    assert w["states"][:, :, 0].tolist() == [[2, 3, 4, 5], [5, 6, 7, 8]]
    assert w["actions"][1, :, 0].tolist() == [110, 112, 114]


# --------------------------------------------------------------------------------------------- the level-2 model


def test_action_encoder_is_bounded_with_the_configured_size():
    enc = ActionEncoder(4 * 2, 16, 3)
    torch.manual_seed(0)
    a = enc(1000 * torch.randn(5, 7, 8))
    assert a.shape == (5, 7, 3)
    assert a.abs().max() <= 1.0 and a.abs().max() > 0.9  # tanh: saturates but never leaves [-1, 1]
    with pytest.raises(ValueError, match="size 8"):
        enc(torch.zeros(5, 6))


def test_encode_window_pools_by_mean_and_aligns_actions_after_time_zero():
    """With identity encoders the level-2 state is the block mean and a2 = tanh(the block's actions)."""
    cfg = tiny_level2(stride=2, horizon=2, pool="mean", dim=1, action_dim=4)
    level2 = Level2(cfg, 1, 2)
    level2.encoder = nn.Identity()
    level2.action_encoder.net = nn.Identity()
    states = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1)  # (M + 1) * k frames; time 0 is frame 1
    actions = 0.01 * torch.arange(10, dtype=torch.float32).reshape(1, 5, 2)
    s2, a2 = level2.encode_window(states, actions)
    assert s2[0, :, 0].tolist() == [0.5, 2.5, 4.5]
    expected = torch.stack([actions[0, 1:3].flatten(), actions[0, 3:5].flatten()])  # actions at frames 1-2, 3-4
    assert torch.allclose(torch.atanh(a2[0]), expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"actions should have shape \(1, 5, A\)"):
        level2.encode_window(states, actions[:, :4])


def test_first_pool_encodes_one_state_per_boundary():
    cfg = tiny_level2()
    torch.manual_seed(0)
    level2 = Level2(cfg, 8, 2)
    states, actions = torch.randn(3, 13, 8), torch.randn(3, 12, 2)
    s2, a2 = level2.encode_window(states, actions)
    assert s2.shape == (3, 4, 6) and a2.shape == (3, 3, 2)
    assert torch.allclose(s2[:, 2], level2.encode_state(states[:, 8]))
    assert torch.allclose(a2[:, 1], level2.encode_actions(actions[:, 4:8].reshape(3, 8)))


def toy_batch(g: torch.Generator, b: int = 64, m: int = 3, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """A point moved by its actions, seen through a fixed random linear map as an 8-D level-1 state."""
    actions = torch.rand(b, m * k, 2, generator=g) * 2 - 1
    pos = torch.cat([torch.rand(b, 1, 2, generator=g) * 4 - 2, actions], 1).cumsum(1)
    lift = torch.randn(2, 8, generator=torch.Generator().manual_seed(5))
    return pos @ lift, actions


def test_level2_loss_is_finite_and_falls_on_a_toy_problem():
    torch.manual_seed(0)
    level2 = Level2(tiny_level2(), 8, 2).train()
    opt = torch.optim.Adam(level2.parameters(), lr=3e-3)
    states, actions = toy_batch(torch.Generator().manual_seed(0))
    losses, preds = [], []
    for step in range(60):
        terms = level2(states, actions, seed=step)
        assert set(terms) == {"pred", "var", "cov", "act", "loss"}
        assert all(math.isfinite(float(v.detach())) for v in terms.values())
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(float(terms["loss"].detach()))
        preds.append(float(terms["pred"].detach()))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert np.mean(preds[-5:]) < 0.7 * np.mean(preds[:5])


def test_latent_abstract_actions_read_no_action_and_learn_the_moves():
    """A level 2 that never sees an action: its abstract actions are inferred from consecutive level-2 states.
    On the toy, the latent must carry the block's move: the prediction beats predicting no change by far, and the
    actions passed in are never read (NaN actions change nothing)."""
    torch.manual_seed(0)
    level2 = Level2(tiny_level2(abstract="latent", action_hidden=64, predictor=PredictorConfig(hidden=64)), 8, 2)
    assert not hasattr(level2, "action_encoder")
    opt = torch.optim.Adam(level2.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(400):
        states, actions = toy_batch(g)
        terms = level2(states, torch.full_like(actions, float("nan")), seed=step)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    level2.eval()
    states, actions = toy_batch(torch.Generator().manual_seed(9), b=256)
    with torch.no_grad():
        s2, a2 = level2.encode_window(states, actions)
        assert torch.equal(a2, level2.encode_window(states, torch.full_like(actions, float("nan")))[1])
        assert a2.abs().max() <= 1 and a2.shape == (256, 3, 2)
        pred = level2.rollout(s2[:, 0], a2)
    err, still = (pred - s2[:, 1:]).pow(2).mean(), (s2[:, :1] - s2[:, 1:]).pow(2).mean()
    assert err < 0.1 * still, (float(err), float(still))


WALL_LIFT = torch.randn(2, 8, generator=torch.Generator().manual_seed(5))


def walled_toy_batch(g: torch.Generator, b: int = 64, m: int = 3, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """``toy_batch`` with a wall at x = 0: points start left of it and every move stops there; the 8-D level-1
    states and the positions."""
    steps = torch.rand(b, m * k, 2, generator=g) * 2 - 1
    pos = [torch.cat([torch.rand(b, 1, generator=g) * -3, torch.rand(b, 1, generator=g) * 4 - 2], 1)]
    for t in range(m * k):
        nxt = pos[-1] + steps[:, t]
        pos.append(torch.stack([nxt[:, 0].clamp(max=0.0), nxt[:, 1]], 1))
    pos = torch.stack(pos, 1)
    return pos @ WALL_LIFT, pos


def test_the_latent_prior_keeps_planned_moves_out_of_the_wall():
    """A latent level 2 never saw a move through the wall, so the latents of moves to the right, planned from a
    point at the wall, send its predictor through it (one unit or more to the right: 18% of uniformly planned
    latents); planned within the prior of that state, far fewer do (2%; the Gaussian's tails)."""
    torch.manual_seed(0)
    level2 = Level2(tiny_level2(abstract="latent", action_hidden=64, predictor=PredictorConfig(hidden=64)), 8, 2)
    assert level2.has_prior
    opt = torch.optim.Adam(level2.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(600):
        terms = level2(walled_toy_batch(g)[0], torch.zeros(64, 12, 2), seed=step)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    assert {"prior", "pred"} <= set(terms)
    level2.eval()
    with torch.no_grad():
        states, pos = walled_toy_batch(torch.Generator().manual_seed(3), b=512)
        read = LinearProbe.fit(level2.encode_state(states).flatten(0, 1).double(), pos.flatten(0, 1).double())
        s0 = level2.encode_state(torch.tensor([[-0.05, 0.0]]) @ WALL_LIFT).expand(1024, -1)
        u = torch.rand(1024, 1, 2, generator=torch.Generator().manual_seed(4)) * 2 - 1
        x_box = read(level2.plan_rollout(s0, u, spread=0.0)[:, 0].double())[:, 0]
        x_prior = read(level2.plan_rollout(s0, u, spread=2.0)[:, 0].double())[:, 0]
    beyond_box, beyond_prior = (x_box > 1.0).float().mean(), (x_prior > 1.0).float().mean()
    assert beyond_box > 0.1 and beyond_prior < beyond_box / 4, (float(beyond_box), float(beyond_prior))


def test_plan_rollout_maps_the_planned_numbers_into_the_prior():
    """``a2 = clamp(mu + spread * std * u)`` at each predicted state, by hand for a prior of constant output."""
    level2 = Level2(tiny_level2(abstract="latent"), 8, 2).eval()
    last = level2.prior[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([math.atanh(0.5), math.atanh(-0.2), math.log(0.1), math.log(0.3)]))
    s0, u = torch.randn(3, 6), torch.rand(3, 4, 2) * 2 - 1
    mu, std = torch.tensor([0.5, -0.2]), torch.tensor([0.1, 0.3])
    with torch.no_grad():
        for spread in (1.0, 2.0, 10.0):
            want = level2.rollout(s0, (mu + spread * std * u).clamp(-1, 1))
            torch.testing.assert_close(level2.plan_rollout(s0, u, spread), want)
        torch.testing.assert_close(level2.plan_rollout(s0, u, 0.0), level2.rollout(s0, u))
    assert not Level2(tiny_level2(abstract="latent", prior=0.0), 8, 2).has_prior
    assert not Level2(tiny_level2(), 8, 2).has_prior


def test_action_noise_is_seeded_and_off_in_eval_mode():
    torch.manual_seed(0)
    level2 = Level2(tiny_level2(act_noise=0.5), 8, 2)
    states, actions = toy_batch(torch.Generator().manual_seed(1), b=8)
    level2.train()
    a, b, c = (float(level2(states, actions, seed=s)["pred"].detach()) for s in (3, 3, 4))
    assert a == b and a != c
    level2.eval()
    with torch.no_grad():
        assert float(level2(states, actions, seed=3)["pred"]) == float(level2(states, actions, seed=4)["pred"])


def test_config_checks_pool_and_sizes():
    with pytest.raises(ValueError, match="pool='max': expected one of first, mean"):
        HJEPAConfig(pool="max")
    with pytest.raises(ValueError, match="stride=0: expected an integer >= 1"):
        HJEPAConfig(stride=0)
    with pytest.raises(ValueError, match="level2.stride=0: expected"):  # named as on the command line
        apply_overrides(HJEPAConfig(), ["stride=0"], "level2.")
    assert HJEPAConfig().window == 8 * 8 + 1 and HJEPAConfig(pool="mean").window == 9 * 8
    assert apply_overrides(HJEPAConfig(), ["stride=4", "predictor.hidden=64"]).predictor.hidden == 64
    with pytest.raises(ConfigError, match="strid"):
        apply_overrides(HJEPAConfig(), ["strid=4"])


# --------------------------------------------------------------------------------------------- train, save, load


def test_train_level2_writes_weights_summary_log_and_report(level2_run):
    run, summary = level2_run
    assert (run / LEVEL2_FILE).is_file() and (run / SUMMARY_FILE).is_file()
    assert not list(run.glob("*.tmp"))
    assert json.loads((run / SUMMARY_FILE).read_text()) == json.loads(json.dumps(summary))
    assert summary["steps"] == L2_STEPS and summary["config"]["stride"] == 4
    assert set(summary["final_losses"]) == {"pred", "var", "cov", "act", "loss"}
    assert all(math.isfinite(v) for v in summary["final_losses"].values())
    assert isinstance(summary["git_rev"], str) and summary["git_rev"]
    rep = summary["horizon_report"]
    assert rep["horizon_steps"] == 12 and rep["level2_steps"] == 3 and rep["steps"] == [4, 8, 12]
    assert len(rep["level2_error_px_by_step"]) == len(rep["level1_error_px_by_step"]) == 3
    for key in ("level2_pred_error_px", "level1_pred_error_px", "copy_error_px", "level2_probe_error_px"):
        assert math.isfinite(rep[key]) and rep[key] >= 0, key
    assert rep["level2_pred_error_px"] == rep["level2_error_px_by_step"][-1]
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "level2"] == [2, 4, 6]
    # the public report recomputes the same numbers from the saved files
    again = level2_horizon_report(run, horizon_steps=12, windows=8)
    assert again["level2_pred_error_px"] == rep["level2_pred_error_px"]
    assert again["level1_pred_error_px"] == rep["level1_pred_error_px"]


def test_a_latent_level2_trains_on_a_run_and_loads_back(level1_run, tmp_path):
    run = fresh_copy(level1_run, tmp_path)
    summary = train_level2(run, tiny_level2(abstract="latent"), progress=False)
    assert summary["config"]["abstract"] == "latent" and math.isfinite(summary["horizon_report"]["level2_pred_error_px"])
    level2, _ = load_level2(run)
    assert level2.cfg.abstract == "latent" and level2.action_dim == 2
    with pytest.raises(ConfigError, match="abstract"):
        tiny_level2(abstract="video")


def test_load_level2_round_trips_the_weights_bit_for_bit(level2_run):
    run, _ = level2_run
    level2, meta = load_level2(run)
    assert not level2.training and meta["step"] == L2_STEPS and meta["level1_dim"] == 8
    assert level2.cfg == tiny_level2()
    saved = level2_tensors(run)
    assert saved.keys() == {f"model/{k}" for k in level2.state_dict()}
    for k, v in level2.state_dict().items():
        assert torch.equal(v, saved[f"model/{k}"]), k


def test_interrupted_and_resumed_level2_equals_uninterrupted(level2_run, tmp_path):
    run_a, summary_a = level2_run
    run_b = fresh_copy(run_a, tmp_path)
    assert train_level2(run_b, tiny_level2(), progress=False, stop_after=3) == {"stopped_at": 3}
    assert read_checkpoint(run_b / LEVEL2_FILE)[1]["step"] == 3 and not (run_b / SUMMARY_FILE).exists()
    with pytest.raises(CheckpointError, match="step 3 of 6"):
        load_level2(run_b)
    early = level2_tensors(run_b)
    assert any(not torch.equal(early[k], v) for k, v in level2_tensors(run_a).items())  # weights do move
    summary_b = train_level2(run_b, tiny_level2(), progress=False)
    assert_same(level2_tensors(run_b), level2_tensors(run_a))
    assert_same(level2_tensors(run_b, "optim/"), level2_tensors(run_a, "optim/"))
    assert summary_b["horizon_report"] == summary_a["horizon_report"]


def test_rerunning_a_finished_level2_trains_no_further(level2_run, tmp_path):
    run = fresh_copy(level2_run[0], tmp_path, keep_level2=True)
    before = (run / LEVEL2_FILE).read_bytes()
    assert train_level2(run, tiny_level2(), progress=False) == level2_run[1]
    assert (run / LEVEL2_FILE).read_bytes() == before


def test_resume_with_other_level2_settings_is_refused(level2_run, tmp_path):
    run = fresh_copy(level2_run[0], tmp_path, keep_level2=True)
    with pytest.raises(RunError, match="stride: was 4, now 2"):
        train_level2(run, tiny_level2(stride=2), progress=False)


def test_other_threads_do_not_block_a_resume(level2_run, tmp_path):
    """``threads`` decides how fast the steps run, not what they learn: a finished level 2 reads back under another."""
    run = fresh_copy(level2_run[0], tmp_path, keep_level2=True)
    before = level2_tensors(run)
    assert train_level2(run, tiny_level2(threads=2), progress=False)["steps"] == L2_STEPS
    assert_same(before, level2_tensors(run))


def test_level2_needs_a_finished_level1(data_file, tmp_path):
    run = tmp_path / "run"
    train(ENV, run, tiny_level1(), data=str(data_file), progress=False, stop_after=3)
    with pytest.raises(RunError, match="level 1 is at step 3 of 8"):
        train_level2(run, tiny_level2(), progress=False)


def test_load_level2_missing_or_for_another_state_size_is_a_clear_error(level2_run, level1_run, tmp_path):
    with pytest.raises(CheckpointError, match="--levels 2"):
        load_level2(level1_run)
    run = fresh_copy(level2_run[0], tmp_path, keep_level2=True)
    saved = json.loads((run / "config.json").read_text())
    saved["train"]["jepa"]["encoder"]["dim"] = 16
    (run / "config.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match="8-D level-1 states.*16-D"):
        load_level2(run)


def test_windows_longer_than_the_episodes_are_refused_before_training(level1_run, tmp_path):
    run = fresh_copy(level1_run, tmp_path)
    with pytest.raises(ValueError, match="81 frames"):
        train_level2(run, tiny_level2(stride=8, horizon=10, report_steps=16), progress=False)
    assert not (run / LEVEL2_FILE).exists()


# --------------------------------------------------------------------------------------------- command line


def test_cli_levels_2_skips_a_finished_level1_and_trains_level2(level1_run, data_file, tmp_path, capsys):
    run = fresh_copy(level1_run, tmp_path)
    level1_files = {n: (run / n).read_bytes() for n in ("checkpoint.safetensors", "metrics.json")}
    args = ["train", "--env", ENV, "--data", str(data_file), "--out", str(run), "--quiet", "--levels", "2"]
    assert cli_main(args + LEVEL1_OVERRIDES + LEVEL2_OVERRIDES + CRITIC2_OVERRIDES) == 0
    out = capsys.readouterr().out
    assert "level 1 of" in out and "is finished" in out and "level 2: 6 steps" in out
    assert "level-2 critic: 5 steps" in out and load_level2_critic(run) is not None
    assert {n: (run / n).read_bytes() for n in level1_files} == level1_files
    level2, _ = load_level2(run)
    assert level2.cfg == tiny_level2()


def test_cli_level2_overrides_are_checked(level1_run, data_file, tmp_path, capsys):
    base = ["train", "--env", ENV, "--data", str(data_file), "--out", str(tmp_path / "x"), "--quiet"]
    assert cli_main(base + LEVEL1_OVERRIDES + ["level2.stride=4"]) == 2
    assert "need --levels 2" in capsys.readouterr().err
    assert cli_main(base + ["--levels", "2"] + LEVEL1_OVERRIDES + ["level2.strid=4"]) == 2
    assert "'strid'" in capsys.readouterr().err
    assert cli_main(base + LEVEL1_OVERRIDES + ["critic2.steps=5"]) == 2
    assert "need --levels 2" in capsys.readouterr().err
    assert cli_main(base + ["--levels", "2"] + LEVEL1_OVERRIDES + ["critic2.gamma=1.5"]) == 2
    err = capsys.readouterr().err
    assert "gamma" in err and "1.5" in err
    assert not (tmp_path / "x").exists()


def test_cli_latent_level2_with_its_critic_plans_hierarchically(level1_run, data_file, tmp_path, capsys):
    """``level2.abstract=latent`` on the command line: level 2 and its critic train without reading an action, and
    hierarchical Mode-2 plans its latent abstract actions, within their prior unless ``hierarchy.prior_spread=0``."""
    run = fresh_copy(level1_run, tmp_path)
    args = ["train", "--env", ENV, "--data", str(data_file), "--out", str(run), "--quiet", "--levels", "2"]
    assert cli_main(args + LEVEL1_OVERRIDES + LEVEL2_OVERRIDES + CRITIC2_OVERRIDES + ["level2.abstract=latent"]) == 0
    level2, _ = load_level2(run)
    assert level2.cfg.abstract == "latent" and level2.has_prior and load_level2_critic(run) is not None
    out = tmp_path / "h.json"
    for spread, reported in (("2.0", 2.0), ("0", None)):
        assert cli_main(["eval", "--run", str(run), "--hierarchical", "--episodes", "2", "--quiet", "--json",
                         str(out), "max_steps=6", "hierarchy.level1.horizon=8", "hierarchy.level2.horizon=2",
                         f"hierarchy.prior_spread={spread}"]) == 0
        r = json.loads(out.read_text())
        assert r["hierarchical"] is True and r["episodes"] == 2 and 0 <= r["success_rate"] <= 1
        assert r["level2_prior_spread"] == reported
