"""Kills at random moments of ``train``: the run directory as a ``kill -9`` at that moment would leave it (copied
just before or after one of the training's disk writes, with the temporary file torn where a write was under
way), resumed, ends with weights and optimizer state bit-identical to an uninterrupted run. (Level 2, distill and
refine are not killed here; their resume is tested in their own files.)"""

from __future__ import annotations

import os
import random
import shutil

import pytest
import torch

from amia.infra.checkpoint import read_checkpoint
from amia.training.world_model import train

from .conftest import ENV, tiny_config

KILLS = 20
STEPS = 8


def no_diagnostics(*args, **kwargs) -> dict:
    """The end-of-training diagnostics, skipped: they read the weights but never change them (and cost seconds)."""
    return {"probe_r2": 0.0}


def tensors(run) -> dict[str, torch.Tensor]:
    found, _, _ = read_checkpoint(run / "checkpoint.safetensors")
    return found


@pytest.fixture(scope="module")
def killed_runs(data_file, tmp_path_factory, request):
    """One uninterrupted run, its directory copied before and after every disk write (the states a kill can leave:
    between two writes the directory does not change); ``KILLS`` of those moments drawn at random."""
    import amia.training.loop as loop

    root = tmp_path_factory.mktemp("kills")
    live, cfg = root / "live", tiny_config(steps=STEPS, checkpoint_every=1)
    copies: list = []
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
            train(ENV, live, cfg, data=str(data_file), progress=False)
    finally:
        os.replace, loop.Logger.log = real_replace, real_log
    return live, cfg, random.Random(21).sample(copies, KILLS), len(copies)


def test_there_are_twenty_kills_at_distinct_moments(killed_runs):
    _, _, copies, moments = killed_runs
    assert len(set(copies)) == KILLS and moments > KILLS


@pytest.mark.parametrize("index", range(KILLS))
def test_a_killed_run_resumes_bit_identical(killed_runs, data_file, monkeypatch, index):
    monkeypatch.setattr("amia.training.world_model.representation_report", no_diagnostics)
    live, cfg, copies, _ = killed_runs
    killed = copies[index]
    metrics = train(ENV, killed, cfg, data=str(data_file), progress=False)
    assert metrics["steps"] == STEPS
    want, got = tensors(live), tensors(killed)
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want), [k for k in want if not torch.equal(want[k], got[k])]
    assert not list(killed.glob("*.tmp"))
