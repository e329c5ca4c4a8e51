"""Shared material of the adversarial cases: a tiny dataset and run (made once), crafted files, and the command line
run in-process; and the per-family case counts printed at the end of ``pytest tests/adversarial``."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from amia.cli import main
from amia.data.collect import CollectConfig, collect
from amia.models.encoder import EncoderConfig
from amia.models.jepa import JEPAConfig, LossConfig
from amia.models.predictor import PredictorConfig
from amia.training.world_model import TrainConfig, train

ENV = "amia/TwoRooms-v0"
TINY = ["steps=4", "batch_size=4", "window=4", "val_every=0", "log_every=2", "checkpoint_every=2", "diag_windows=8",
        "threads=1", "warmup=1", "jepa.encoder.dim=8", "jepa.encoder.channels=[4]", "jepa.encoder.downsample=4",
        "jepa.predictor.hidden=16", "jepa.loss.idm=0"]
FAST_EVAL = ["max_steps=2", "replan_every=2", "timing_calls=0", "planning.horizon=2", "planning.iterations=1",
             "planning.warm_iterations=1", "planning.restarts=1", "planning.samples=4", "planning.elites=2"]


def tiny_config(**changes) -> TrainConfig:
    """The tiny run's training settings (a few seconds on one thread)."""
    base = dict(steps=4, batch_size=4, window=4, val_every=0, log_every=2, checkpoint_every=2, diag_windows=8,
                threads=1, warmup=1, jepa=JEPAConfig(encoder=EncoderConfig(dim=8, channels=(4,), downsample=4),
                                                     predictor=PredictorConfig(hidden=16), loss=LossConfig(idm=0.0)))
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_file(tmp_path_factory) -> Path:
    """A valid TwoRooms trajectory file: 6 episodes of 20 steps (read-only: copy it to change it)."""
    path = tmp_path_factory.mktemp("data") / "tworooms.h5"
    collect(ENV, path, CollectConfig(episodes=6, steps=20, batch=6), progress=False)
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, data_file) -> Path:
    """A finished tiny run (read-only: copy it with ``copy_run`` to change it)."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    train(ENV, run, tiny_config(), data=str(data_file), progress=False)
    return run


def copy_run(run: Path, dest: Path) -> Path:
    """A writable copy of a run directory (its data file stays shared)."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("tb"))
    return dest


def arrays(path: Path) -> dict:
    """Every dataset and attribute of a trajectory file, to write a modified copy with ``write_file``."""
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in f}
        out["attrs"] = dict(f.attrs)
    return out


def write_file(path: Path, data: dict, **h5) -> Path:
    """A trajectory file from ``arrays``' output (``None`` leaves a dataset out; ``h5``: dataset options)."""
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            if k != "attrs" and v is not None:
                f.create_dataset(k, data=v, **h5)
        f.attrs.update(data.get("attrs", {}))
    return path


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """The command's exit code, stdout and stderr."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str) -> str:
    """The single error line of a failed command (asserting there is exactly one, in the documented form)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("amia: error: "), err
    assert "Traceback" not in err
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Bytes of every file under a folder (to show a refused call wrote nothing)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def finite(x: np.ndarray) -> bool:
    return bool(np.isfinite(x).all())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the number of adversarial cases per family (test module), and in all."""
    families = collections.Counter()
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []) + \
            terminalreporter.stats.get("skipped", []):
        if "adversarial" in report.nodeid and report.when in ("call", "setup") and \
                (report.when == "call" or report.skipped):
            families[report.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")] += 1
    if families:
        terminalreporter.write_line("adversarial cases per family: " + ", ".join(
            f"{name} {n}" for name, n in sorted(families.items())) + f"; {sum(families.values())} in all")
