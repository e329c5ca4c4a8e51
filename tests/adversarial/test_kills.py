"""Kills at random moments of ``train`` and of level 2's training: the run directory as a ``kill -9`` at that
moment would leave it (copied just before or after one of the training's disk writes, with the temporary file torn
where a write was under way; between two writes the directory does not change), resumed, ends with weights and
optimizer state bit-identical to an uninterrupted run. Distill and refine, killed the same way (they resume at
their last finished round), end with the same policy, critic and refined weights as uninterrupted jobs."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import amia.training.loop as loop
from amia.agent.load import AgentConfig
from amia.infra.checkpoint import read_checkpoint
from amia.models.level2 import HJEPAConfig
from amia.models.policy import PolicyConfig
from amia.models.predictor import PredictorConfig
from amia.planning.planners import PlannerConfig
from amia.training.distill import CriticConfig, DistillConfig, distill
from amia.training.level2 import train_level2
from amia.training.policy import AmortiseConfig
from amia.training.refine import RefineConfig, refine
from amia.training.world_model import train

from .conftest import ENV, copy_run, tiny_config

KILLS, KILLS2, KILLS_LEARN = 20, 10, 5
PLAN = PlannerConfig(horizon=4, iterations=1, warm_iterations=1, restarts=1, samples=4, elites=2)
DISTILL = DistillConfig(rounds=2, episodes=2, steps=8, planning=PLAN,
                        policy=PolicyConfig(hidden=8, layers=1, steps=5, batch_size=8),
                        critic=CriticConfig(hidden=8, layers=1, steps=5, batch_size=8),
                        amortise=AmortiseConfig(horizon=2, steps=3, batch_size=8))
REFINE = RefineConfig(rounds=2, episodes=2, steps=6, window=4, fit_steps=5, batch_size=4, held_out=2,
                      act=AgentConfig(planning=PLAN))
STEPS = 8
LEVEL2 = HJEPAConfig(stride=4, horizon=3, dim=6, action_dim=2, encoder_hidden=16, action_hidden=16,
                     predictor=PredictorConfig(hidden=16), steps=6, batch_size=8, warmup=2, log_every=2,
                     checkpoint_every=1, report_steps=0, threads=1)


def no_diagnostics(*args, **kwargs) -> dict:
    """The end-of-training diagnostics, skipped: they read the weights but never change them (and cost seconds)."""
    return {"probe_r2": 0.0}


def tensors(path: Path) -> dict[str, torch.Tensor]:
    found, _, _ = read_checkpoint(path)
    return found


def moments(live: Path, root: Path, work: Callable[[], object]) -> list[Path]:
    """Run ``work`` (which writes in ``live``), copying ``live`` before and after each of its disk writes."""
    copies: list[Path] = []
    real_replace, real_log = os.replace, loop.Logger.log

    def copy_now(torn: str | None) -> None:
        if live.exists():
            dest = root / f"moment{len(copies)}"
            shutil.copytree(live, dest, ignore=shutil.ignore_patterns("tb"))
            if torn and (dest / torn).exists():  # the temporary file of a write under way: half of it
                (dest / torn).write_bytes((dest / torn).read_bytes()[: (dest / torn).stat().st_size // 2])
            copies.append(dest)

    def replace(src, dst):
        inside = str(live) in str(dst)
        if inside:
            copy_now(os.path.basename(src))
        real_replace(src, dst)
        if inside:
            copy_now(None)

    def log(self, *args, **kwargs):
        copy_now(None)
        real_log(self, *args, **kwargs)
        copy_now(None)

    os.replace, loop.Logger.log = replace, log
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("amia.training.world_model.representation_report", no_diagnostics)
            work()
    finally:
        os.replace, loop.Logger.log = real_replace, real_log
    return copies


@pytest.fixture(scope="module")
def killed_runs(data_file, tmp_path_factory):
    """One uninterrupted level-1 run and ``KILLS`` random moments of it."""
    root = tmp_path_factory.mktemp("kills")
    live, cfg = root / "live", tiny_config(steps=STEPS, checkpoint_every=1)
    copies = moments(live, root, lambda: train(ENV, live, cfg, data=str(data_file), progress=False))
    return live, cfg, random.Random(21).sample(copies, KILLS), len(copies)


@pytest.fixture(scope="module")
def killed_level2(trained_run, tmp_path_factory):
    """One uninterrupted level-2 training on the tiny run and ``KILLS2`` random moments of it."""
    root = tmp_path_factory.mktemp("kills2")
    live = copy_run(trained_run, root / "live")
    copies = moments(live, root, lambda: train_level2(live, LEVEL2, progress=False))
    return live, random.Random(22).sample(copies, KILLS2), len(copies)


@pytest.fixture(scope="module")
def killed_learning(trained_run, tmp_path_factory):
    """One uninterrupted distill and one uninterrupted refine of the tiny run, and ``KILLS_LEARN`` moments of each."""
    root = tmp_path_factory.mktemp("kills_learning")
    live_d = copy_run(trained_run, root / "live_distill")
    distill_copies = moments(live_d, root / "d", lambda: distill(live_d, DISTILL, progress=False))
    live_r = root / "live_refined"
    refine_copies = moments(live_r, root / "r", lambda: refine(trained_run, live_r, REFINE, progress=False))
    rng = random.Random(23)
    return {"distill": (live_d, rng.sample(distill_copies, KILLS_LEARN)),
            "refine": (live_r, rng.sample(refine_copies, KILLS_LEARN))}


@pytest.mark.parametrize("index", range(KILLS_LEARN))
def test_a_killed_distill_resumes_to_the_same_policy_and_critic(killed_learning, index):
    live, copies = killed_learning["distill"]
    killed = copies[index]
    distill(killed, DISTILL, progress=False)
    for name in ("policy.safetensors", "critic.safetensors"):
        want, got = tensors(live / name), tensors(killed / name)
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want), name


@pytest.mark.parametrize("index", range(KILLS_LEARN))
def test_a_killed_refine_resumes_to_the_same_weights(killed_learning, trained_run, index):
    live, copies = killed_learning["refine"]
    killed = copies[index]
    refine(trained_run, killed, REFINE, progress=False)
    want, got = tensors(live / "checkpoint.safetensors"), tensors(killed / "checkpoint.safetensors")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_the_kills_are_at_distinct_moments(killed_runs, killed_level2):
    assert len(set(killed_runs[2])) == KILLS and killed_runs[3] > KILLS
    assert len(set(killed_level2[1])) == KILLS2 and killed_level2[2] > KILLS2


@pytest.mark.parametrize("index", range(KILLS))
def test_a_killed_run_resumes_bit_identical(killed_runs, data_file, monkeypatch, index):
    monkeypatch.setattr("amia.training.world_model.representation_report", no_diagnostics)
    live, cfg, copies, _ = killed_runs
    killed = copies[index]
    metrics = train(ENV, killed, cfg, data=str(data_file), progress=False)
    assert metrics["steps"] == STEPS
    want, got = tensors(live / "checkpoint.safetensors"), tensors(killed / "checkpoint.safetensors")
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want), [k for k in want if not torch.equal(want[k], got[k])]
    assert not list(killed.glob("*.tmp"))


@pytest.mark.parametrize("index", range(KILLS2))
def test_a_killed_level2_resumes_bit_identical(killed_level2, index):
    live, copies, _ = killed_level2
    killed = copies[index]
    summary = train_level2(killed, LEVEL2, progress=False)
    assert summary["steps"] == LEVEL2.steps
    want, got = tensors(live / "level2.safetensors"), tensors(killed / "level2.safetensors")
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want), [k for k in want if not torch.equal(want[k], got[k])]
    assert not list(killed.glob("*.tmp"))
