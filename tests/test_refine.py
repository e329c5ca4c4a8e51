"""`amia refine`: the predictor refitted on the agent's own experience (tiny runs, seconds on two cores)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from amia.agent.load import AgentConfig
from amia.agent.surprise import SurpriseConfig
from amia.cli import main as cli_main
from amia.data.collect import CollectConfig, collect
from amia.data.encode import EncodedTrajectories
from amia.envs import make_world
from amia.infra.checkpoint import read_checkpoint
from amia.infra.run_dir import load_model
from amia.models.encoder import EncoderConfig
from amia.models.jepa import JEPAConfig
from amia.models.predictor import Predictor, PredictorConfig
from amia.planning.planners import PlannerConfig
from amia.training.refine import MixedWindows, RecordingWorld, RefineConfig, fit_predictor, refine
from amia.training.world_model import TrainConfig, train

ENV = "amia/TwoRooms-v0"
SMALL = RefineConfig(rounds=2, episodes=4, steps=8, window=4, fit_steps=20, batch_size=8, held_out=4,
                     act=AgentConfig(planner="mppi", surprise=SurpriseConfig(enabled=True, explore="back_off"),
                                    planning=PlannerConfig(horizon=4, iterations=2, warm_iterations=1, samples=8,
                                                           elites=2)))

pytestmark = pytest.mark.usefixtures("restore_threads")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("refine")
    collect(ENV, root / "data.h5", CollectConfig(episodes=8, steps=20, batch=8), progress=False)
    cfg = TrainConfig(steps=4, batch_size=8, window=4, val_every=0, log_every=2, checkpoint_every=2, diag_windows=16,
                      threads=1, jepa=JEPAConfig(encoder=EncoderConfig(dim=8, channels=(4, 8), downsample=4),
                                                 predictor=PredictorConfig(hidden=16)))
    train(ENV, root / "run", cfg, data=str(root / "data.h5"), progress=False)
    return root / "run"


def test_recording_world_keeps_what_the_agent_saw_and_did_and_moves_like_the_world():
    world, twin = make_world(ENV, 3, seed=1), make_world(ENV, 3, seed=1)
    world.reset(seed=5)
    twin.reset(seed=5)
    rec = RecordingWorld(world)
    rng = np.random.default_rng(0)
    for _ in range(4):
        a = rng.uniform(-2.45, 2.45, size=(3, 2))
        obs, info = rec.step(a)
        obs2, info2 = twin.step(a)
        np.testing.assert_array_equal(obs, obs2)
        np.testing.assert_allclose(info["state"], info2["state"])
    frames, actions = rec.experience()
    assert frames.shape == (3, 5, *world.obs_shape) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[:, -1], twin.render())
    assert actions.shape == (3, 4, 2)
    np.testing.assert_allclose(actions[:, -1], a, rtol=1e-6)
    np.testing.assert_array_equal(rec.state, twin.state)  # everything else passes through to the world


def _linear_windows(sign: float, episodes: int, steps: int, g: torch.Generator):
    a = torch.rand(episodes, steps, 2, generator=g) * 2 - 1
    s0 = torch.randn(episodes, 1, 2, generator=g)
    return torch.cat([s0, s0 + sign * a.cumsum(1)], 1), a


def test_refit_learns_the_experience_it_is_given_and_not_the_other_data():
    """Own experience follows s' = s + a, the dataset s' = s - a: with own_fraction 1 the predictor learns the first
    (error near 0 against ~the action's second moment if it had learned nothing or the other law)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    own_s, own_a = _linear_windows(+1.0, 64, 12, g)
    data_s, data_a = _linear_windows(-1.0, 64, 12, g)
    sampler = MixedWindows(EncodedTrajectories.from_episodes(own_s, own_a),
                           EncodedTrajectories.from_episodes(data_s, data_a), window=4)
    cfg = RefineConfig(fit_steps=600, batch_size=64, window=4, lr=3e-3, own_fraction=1.0)
    pred = Predictor(PredictorConfig(hidden=64, layers=2), 2, 2)
    fit_predictor(pred, sampler, cfg, seed=0, device=torch.device("cpu"), progress=False)
    test_s, test_a = _linear_windows(+1.0, 32, 4, torch.Generator().manual_seed(9))
    other_s, other_a = _linear_windows(-1.0, 32, 4, torch.Generator().manual_seed(9))
    with torch.no_grad():
        own_err = (pred.rollout(test_s[:, 0], test_a) - test_s[:, 1:]).pow(2).mean().item()
        other_err = (pred.rollout(other_s[:, 0], other_a) - other_s[:, 1:]).pow(2).mean().item()
    assert own_err < 0.02 and other_err > 1.0


def test_refine_writes_a_run_with_the_same_encoder_a_refitted_predictor_and_resumes(tiny_run, tmp_path):
    out = tmp_path / "refined"
    summary = refine(tiny_run, out, SMALL, progress=False)
    assert [r["seed"] for r in summary["rounds"]] == [1, 2]
    assert [r["own_episodes"] for r in summary["rounds"]] == [4, 8]  # experience accumulates over rounds
    assert json.loads((out / "refine.json").read_text())["rounds"] == summary["rounds"]
    before, _ = load_model(tiny_run)
    after, saved = load_model(out)
    assert saved["env_id"] == ENV and Path(saved["data"]).exists()
    for (name, p), q in zip(before.encoder.state_dict().items(), after.encoder.state_dict().values()):
        assert torch.equal(p, q), name
    moved = [not torch.equal(p, q) for p, q in zip(before.predictor.parameters(), after.predictor.parameters())]
    assert all(moved)
    stamp = (out / "checkpoint.safetensors").stat().st_mtime_ns
    assert refine(tiny_run, out, SMALL, progress=False) == summary  # finished: nothing is redone
    assert (out / "checkpoint.safetensors").stat().st_mtime_ns == stamp
    _, meta, _ = read_checkpoint(out / "checkpoint.safetensors")
    assert meta["refined"]["rounds"] == 2
    with pytest.raises(ValueError, match="other settings"):
        refine(tiny_run, out, dataclasses.replace(SMALL, episodes=3), progress=False)
    more = refine(tiny_run, out, dataclasses.replace(SMALL, rounds=3), progress=False)  # adds a round
    assert more["rounds"][:2] == summary["rounds"] and more["rounds"][2]["seed"] == 3
    assert more["rounds"][2]["own_episodes"] == 12


def test_refine_refuses_bad_input_with_clear_errors(tiny_run, tmp_path, capsys):
    with pytest.raises(ValueError, match="must differ"):
        refine(tiny_run, tiny_run, SMALL, progress=False)
    with pytest.raises(ValueError, match="seed=0: expected an integer >= 1"):
        RefineConfig(seed=0)
    with pytest.raises(ValueError, match="steps=8: expected an integer >= window"):
        RefineConfig(steps=8, window=16)
    assert cli_main(["refine", "--run", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "nothing" in capsys.readouterr().err
