"""Training loop: run artefacts, exact resume (also after a hard kill or a real SIGINT), bad input, LR schedule.

Every run here is tiny (8-dim states, 16x16 frames, 8 windows of 4 steps) so the file runs in well under a
minute on two CPU cores; the data are collected once per module.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from amia.cli import main as cli_main
from amia.data.collect import CollectConfig, collect
from amia.data.dataset import DatasetError
from amia.infra.checkpoint import CheckpointError, load_weights, read_checkpoint
from amia.infra.config import to_dict
from amia.infra.run_dir import RunError, load_model
from amia.models.encoder import EncoderConfig
from amia.models.jepa import JEPA, JEPAConfig, LossConfig
from amia.models.predictor import PredictorConfig
from amia.training.loop import warmup_cosine
from amia.training.world_model import TrainConfig, load_run_config, train


def learning_rate(cfg: TrainConfig, step: int) -> float:
    return warmup_cosine(cfg.lr, cfg.warmup, cfg.steps)(step)

ROOT = Path(__file__).resolve().parent.parent
ENV = "amia/TwoRooms-v0"
OTHER_ENV = "amia/Wall-v0"
N = 8  # steps of the reference run

# The same tiny run as key=value overrides for the command line (warmup 2 so the weights move visibly).
TINY_OVERRIDES = ["batch_size=8", "window=4", "val_every=0", "log_every=2", "checkpoint_every=2",
                  "diag_windows=16", "threads=1", "warmup=2", "jepa.encoder.dim=8", "jepa.encoder.channels=[4,8]",
                  "jepa.encoder.downsample=4", "jepa.predictor.hidden=16"]


def tiny(steps: int = N, dim: int = 8, **kw) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=8, window=4, val_every=0, log_every=2, checkpoint_every=2,
                       diag_windows=16, threads=1, warmup=2,
                       jepa=JEPAConfig(encoder=EncoderConfig(dim=dim, channels=(4, 8), downsample=4),
                                       predictor=PredictorConfig(hidden=16)), **kw)


def model_tensors(run: Path) -> dict[str, torch.Tensor]:
    tensors, _, _ = read_checkpoint(run / "checkpoint.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith("model/")}


def optim_tensors(run: Path) -> dict[str, torch.Tensor]:
    tensors, _, _ = read_checkpoint(run / "checkpoint.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith("optim/")}


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"


def log_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def snapshot(run: Path) -> dict[str, bytes]:
    """Bytes of every file in a run directory (to show a failed call wrote nothing)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


pytestmark = pytest.mark.usefixtures("restore_threads")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tworooms.h5"
    collect(ENV, path, CollectConfig(episodes=8, steps=20, batch=8), progress=False)
    return path


@pytest.fixture(scope="module")
def other_env_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("other") / "wall.h5"
    collect(OTHER_ENV, path, CollectConfig(episodes=2, steps=20, batch=2), progress=False)
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_file) -> tuple[Path, dict]:
    """Run A: N steps without interruption (read-only for the tests; copy it before changing anything)."""
    run = tmp_path_factory.mktemp("runA") / "run"
    metrics = train(ENV, run, tiny(), data=str(data_file), progress=False)
    return run, metrics


# --------------------------------------------------------------------------------------------- artefacts


def test_run_writes_config_checkpoint_log_and_metrics(finished_run, data_file):
    run, metrics = finished_run
    for name in ("config.json", "checkpoint.safetensors", "log.jsonl", "metrics.json"):
        assert (run / name).is_file(), name
    assert not list(run.glob("*.tmp")), "an atomic write left its temporary file behind"

    saved = json.loads((run / "config.json").read_text())
    assert saved["env_id"] == ENV
    assert saved["data"] == str(data_file.resolve())
    assert saved["train"] == {k: v for k, v in to_dict(tiny()).items() if k != "init"}  # an empty init is left out
    assert load_run_config(run)[1] == tiny()

    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["steps"] == N and on_disk["env_id"] == ENV and on_disk["world_size"] == 1
    for key in ("probe_r2", "pred_error_px_h16", "copy_error_px_h16", "effective_rank"):
        assert isinstance(on_disk[key], float) and math.isfinite(on_disk[key]), key
    assert on_disk["probe_r2"] <= 1.0
    assert on_disk["pred_error_px_h16"] > 0 and on_disk["copy_error_px_h16"] > 0
    std = on_disk["embedding_std"]
    assert isinstance(std, list) and len(std) == 8 and all(isinstance(v, float) and v >= 0 for v in std)
    assert on_disk["embedding_std_min"] == pytest.approx(min(std), abs=1e-4)
    assert 1.0 <= on_disk["effective_rank"] <= 8.0 + 1e-6
    assert isinstance(on_disk["git_rev"], str) and on_disk["git_rev"]

    rows = log_rows(run)
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == [2, 4, 6, 8]
    assert all(math.isfinite(r["loss"]) for r in train_rows)
    weights = to_dict(tiny().jepa.loss)  # each term's weight has the term's name; "loss" is their weighted sum
    regs = {"vicreg": ["var", "cov"], "sigreg": ["sigreg"], "none": []}[weights["regularizer"]]
    terms = ["pred", *regs, *(k for k in ("smooth", "idm") if weights[k])]
    assert all(set(terms) <= set(r) for r in train_rows)
    assert all(r["loss"] == pytest.approx(sum(weights[k] * r[k] for k in terms), rel=1e-5) for r in train_rows)
    assert [r["lr"] for r in train_rows] == pytest.approx([learning_rate(tiny(), s - 1) for s in (2, 4, 6, 8)])
    steps = [r["step"] for r in rows]
    assert steps == sorted(steps)
    assert [r["kind"] for r in rows].count("final") == 1 and rows[-1]["kind"] == "final"
    assert rows[-1]["probe_r2"] == on_disk["probe_r2"]

    tensors, meta, groups = read_checkpoint(run / "checkpoint.safetensors")
    assert meta["step"] == N and meta["env_id"] == ENV and meta["action_dim"] == 2
    assert len(meta["obs_shape"]) == 3
    assert groups and groups[0]["lr"] == pytest.approx(learning_rate(tiny(), N - 1))
    model, cfg_json = load_model(run)
    assert cfg_json == saved
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, tensors[f"model/{k}"]), k


def test_training_changes_the_weights(finished_run, data_file, tmp_path):
    """A guard for the resume tests below: the weights do move between steps, so equality means something."""
    run, _ = finished_run
    early = tmp_path / "early"
    assert train(ENV, early, tiny(), data=str(data_file), progress=False, stop_after=3) == {"stopped_at": 3}
    a, b = model_tensors(run), model_tensors(early)
    assert a.keys() == b.keys()
    assert all(not torch.equal(a[k], b[k]) for k in a if k.endswith("weight"))


# --------------------------------------------------------------------------------------------- resume


def test_interrupted_and_resumed_run_equals_uninterrupted(finished_run, data_file, tmp_path):
    run_a, _ = finished_run
    run_b = tmp_path / "runB"
    result = train(ENV, run_b, tiny(), data=str(data_file), progress=False, stop_after=3)
    assert result == {"stopped_at": 3}
    _, meta, _ = read_checkpoint(run_b / "checkpoint.safetensors")
    assert meta["step"] == 3
    assert not (run_b / "metrics.json").exists()

    metrics = train(ENV, run_b, tiny(), data=str(data_file), progress=False)
    assert metrics["steps"] == N
    _, meta, groups_b = read_checkpoint(run_b / "checkpoint.safetensors")
    _, _, groups_a = read_checkpoint(run_a / "checkpoint.safetensors")
    assert meta["step"] == N
    assert_same_tensors(model_tensors(run_b), model_tensors(run_a))
    assert_same_tensors(optim_tensors(run_b), optim_tensors(run_a))
    assert groups_b == groups_a

    # the logging intervals that lie wholly after the interruption saw exactly the same losses
    a_rows = {r["step"]: r for r in log_rows(run_a) if r["kind"] == "train"}
    b_rows = [r for r in log_rows(run_b) if r["kind"] == "train"]
    assert [r["step"] for r in b_rows] == [2, 4, 6, 8]
    for r in b_rows:
        if r["step"] in (2, 6, 8):
            assert r["loss"] == a_rows[r["step"]]["loss"], r["step"]
    final_a = json.loads((run_a / "metrics.json").read_text())
    assert metrics["probe_r2"] == final_a["probe_r2"]
    assert metrics["embedding_std"] == final_a["embedding_std"]


def test_resume_after_hard_kill_equals_uninterrupted(finished_run, data_file, tmp_path, monkeypatch):
    """Copy the run directory the moment the periodic checkpoint of step 4 is on disk (as a ``kill -9`` right
    after it would leave it, with a half-written temporary file from the next save), then resume the copy."""
    import amia.training.loop as train_mod

    run_a, _ = finished_run
    live, killed = tmp_path / "live", tmp_path / "killed"
    real_save = train_mod.save_checkpoint

    def save_and_copy(path, model, opt, meta):
        real_save(path, model, opt, meta)
        if meta["step"] == 4 and not killed.exists():
            shutil.copytree(live, killed)

    monkeypatch.setattr(train_mod, "save_checkpoint", save_and_copy)
    train(ENV, live, tiny(), data=str(data_file), progress=False)
    monkeypatch.undo()
    assert (killed / "checkpoint.safetensors").exists() and not (killed / "metrics.json").exists()
    assert read_checkpoint(killed / "checkpoint.safetensors")[1]["step"] == 4
    assert [r["step"] for r in log_rows(killed)] == [2, 4]
    (killed / "checkpoint.safetensors.tmp").write_bytes(b"\x00" * 100)  # torn write of the step-6 checkpoint

    metrics = train(ENV, killed, tiny(), data=str(data_file), progress=False)
    assert metrics["steps"] == N
    assert_same_tensors(model_tensors(killed), model_tensors(run_a))
    assert_same_tensors(optim_tensors(killed), optim_tensors(run_a))
    assert_same_tensors(model_tensors(live), model_tensors(run_a))
    assert not (killed / "checkpoint.safetensors.tmp").exists()


def test_rerunning_a_finished_run_trains_no_further(finished_run, data_file, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    before = model_tensors(run)
    metrics = train(ENV, run, tiny(), data=str(data_file), progress=False)
    assert metrics["steps"] == N
    assert_same_tensors(model_tensors(run), before)
    assert read_checkpoint(run / "checkpoint.safetensors")[1]["step"] == N


def _wait_for_log_step(proc: subprocess.Popen, log: Path, above: int, timeout: float = 90.0) -> int:
    """Poll ``log.jsonl`` until a training row with step > ``above`` appears; the step it shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training exited early with {proc.returncode}:\n{out}\n{err}")
        if log.exists():
            steps = [json.loads(line)["step"] for line in log.read_text().splitlines() if line.endswith("}")]
            if steps and max(steps) > above:
                return max(steps)
        time.sleep(0.02)
    pytest.fail(f"no log row past step {above} within {timeout} s")


def _interrupt_cli(cmd: list[str], run: Path, above: int) -> tuple[int, str]:
    """Start ``amia train``, SIGINT it once the log passes step ``above``; exit code and stdout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_log_step(proc, run / "log.jsonl", above)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, f"exit code {proc.returncode}\n{out}\n{err}"
        return proc.returncode, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_sigint_checkpoints_and_the_same_command_resumes(data_file, tmp_path):
    run = tmp_path / "run"
    total = 100_000  # far more than the test lets it do: the run is always interrupted
    cmd = [sys.executable, "-m", "amia", "train", "--env", ENV, "--data", str(data_file), "--out", str(run),
           "--quiet", *TINY_OVERRIDES, f"steps={total}"]

    _, out = _interrupt_cli(cmd, run, above=0)
    _, meta, _ = read_checkpoint(run / "checkpoint.safetensors")
    first = meta["step"]
    assert 0 < first < total
    assert f"interrupted at step {first}" in out
    assert not (run / "metrics.json").exists() and not list(run.glob("*.tmp"))
    logged = log_rows(run)
    assert max(r["step"] for r in logged) <= first
    config = (run / "config.json").read_bytes()

    _interrupt_cli(cmd, run, above=first)
    _, meta, _ = read_checkpoint(run / "checkpoint.safetensors")
    second = meta["step"]
    assert first < second < total
    new = [r for r in log_rows(run)[len(logged):] if r["kind"] == "train"]
    # resumed, not restarted: the first new row is the first logging step after the checkpoint
    assert new and new[0]["step"] == first + 2 - first % 2
    assert [r["step"] for r in new] == sorted({r["step"] for r in new})
    assert (run / "config.json").read_bytes() == config


def test_without_data_the_run_collects_its_own_once(tmp_path):
    run = tmp_path / "run"
    cfg = tiny(collect=CollectConfig(episodes=8, steps=20, batch=8))
    assert train(ENV, run, cfg, progress=False, stop_after=2) == {"stopped_at": 2}
    assert json.loads((run / "config.json").read_text())["data"] is None
    data = (run / "data.h5").read_bytes()
    assert train(ENV, run, cfg, progress=False, stop_after=4) == {"stopped_at": 4}
    assert (run / "data.h5").read_bytes() == data  # resumed on the same file, not collected again
    assert read_checkpoint(run / "checkpoint.safetensors")[1]["step"] == 4


# --------------------------------------------------------------------------------------------- bad input


def test_unknown_env_id_is_a_clear_error_and_writes_nothing(data_file, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="amia/NoSuchWorld-v0"):
        train("amia/NoSuchWorld-v0", run, tiny(), data=str(data_file), progress=False)
    assert not run.exists()


def test_cli_unknown_env_id_exits_2(data_file, tmp_path, capsys):
    run = tmp_path / "run"
    code = cli_main(["train", "--env", "amia/TwoRoom-v0", "--data", str(data_file), "--out", str(run), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "amia/TwoRoom-v0" in err and "amia/TwoRooms-v0" in err  # names the id and suggests the close one
    assert not run.exists()


def test_cli_unknown_config_key_exits_2_and_names_it(data_file, tmp_path, capsys):
    run = tmp_path / "run"
    code = cli_main(["train", "--env", ENV, "--data", str(data_file), "--out", str(run), "--quiet",
                     *TINY_OVERRIDES, "jepa.loss.bogus=1"])
    assert code == 2
    captured = capsys.readouterr()
    assert "bogus" in captured.err and "amia: error" in captured.err
    assert not run.exists()


@pytest.mark.parametrize("change, field", [
    ({"lr": 2e-3}, "train.lr"),
    ({"dim": 16}, "train.jepa.encoder.dim"),
    ({"env": OTHER_ENV}, "env_id"),
])
def test_rerun_with_other_settings_is_refused_and_changes_nothing(finished_run, data_file, other_env_data, tmp_path,
                                                                 change, field):
    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    before = snapshot(run)
    change = dict(change)
    env = change.pop("env", ENV)
    data = other_env_data if env != ENV else data_file  # data that fits the env, so only the run dir objects
    with pytest.raises(RunError, match=f"{field}: was .*, now "):
        train(env, run, tiny(**change), data=str(data), progress=False)
    assert snapshot(run) == before


def test_rerun_with_other_data_file_is_refused(finished_run, data_file, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    other = tmp_path / "copy.h5"
    shutil.copyfile(data_file, other)
    before = snapshot(run)
    with pytest.raises(RunError, match="data: was "):
        train(ENV, run, tiny(), data=str(other), progress=False)
    assert snapshot(run) == before


def test_data_from_another_env_is_refused(other_env_data, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RunError, match=f"{OTHER_ENV}.*{ENV}"):
        train(ENV, run, tiny(), data=str(other_env_data), progress=False)
    assert not (run / "checkpoint.safetensors").exists()


def test_missing_data_file_is_refused(tmp_path):
    run = tmp_path / "run"
    missing = tmp_path / "nope.h5"
    with pytest.raises(RunError, match="nope.h5"):
        train(ENV, run, tiny(), data=str(missing), progress=False)
    assert not (run / "checkpoint.safetensors").exists() and not (run / "data.h5").exists()


@pytest.fixture
def truncated_data(data_file, tmp_path) -> Path:
    path = tmp_path / "truncated.h5"
    raw = data_file.read_bytes()
    path.write_bytes(raw[: len(raw) * 2 // 3])
    return path


def test_truncated_data_file_is_a_dataset_error(truncated_data, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(DatasetError, match="truncated"):
        train(ENV, run, tiny(), data=str(truncated_data), progress=False)
    assert not (run / "checkpoint.safetensors").exists()


@pytest.mark.parametrize("bad", ["missing", "other_env", "truncated"])
def test_a_bad_data_file_does_not_bind_the_run_directory(bad, data_file, other_env_data, truncated_data, tmp_path):
    """After a refused --data, the same --out with a good file starts normally (no config.json naming the bad one)."""
    run = tmp_path / "run"
    path = {"missing": tmp_path / "nope.h5", "other_env": other_env_data, "truncated": truncated_data}[bad]
    with pytest.raises((RunError, DatasetError)):
        train(ENV, run, tiny(), data=str(path), progress=False)
    assert not (run / "config.json").exists()
    assert train(ENV, run, tiny(), data=str(data_file), progress=False, stop_after=1) == {"stopped_at": 1}
    assert json.loads((run / "config.json").read_text())["data"] == str(data_file.resolve())


def test_checkpoint_of_another_architecture_names_tensor_and_shapes(finished_run):
    run, _ = finished_run
    tensors, meta, _ = read_checkpoint(run / "checkpoint.safetensors")
    wider = JEPA(tiny(dim=16).jepa, tuple(meta["obs_shape"]), meta["action_dim"])
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_weights(wider, tensors, run / "checkpoint.safetensors")
    msg = str(info.value)
    mine, theirs = wider.state_dict()["encoder.head.weight"], tensors["model/encoder.head.weight"]
    assert tuple(mine.shape) != tuple(theirs.shape)
    assert f"encoder.head.weight: checkpoint has shape {tuple(theirs.shape)}, model expects {tuple(mine.shape)}" in msg
    assert str(run / "checkpoint.safetensors") in msg
    assert all(torch.equal(v, before[k]) for k, v in wider.state_dict().items()), "a refused load changed weights"

    # missing / unexpected tensors are named too (a model with an inverse-dynamics head and one without)
    def jepa(idm: float) -> JEPA:
        cfg = JEPAConfig(encoder=tiny().jepa.encoder, predictor=tiny().jepa.predictor, loss=LossConfig(idm=idm))
        return JEPA(cfg, tuple(meta["obs_shape"]), meta["action_dim"])

    with_idm, without = jepa(1.0), jepa(0.0)
    as_saved = {f"model/{k}": v for k, v in without.state_dict().items()}
    with pytest.raises(CheckpointError, match="missing idm.0.weight"):
        load_weights(with_idm, as_saved)
    with pytest.raises(CheckpointError, match="unexpected idm.0.weight"):
        load_weights(without, {f"model/{k}": v for k, v in with_idm.state_dict().items()})
    load_weights(jepa(0.0), as_saved)  # the same architecture loads


def test_load_model_with_edited_config_is_a_checkpoint_error(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    saved = json.loads((run / "config.json").read_text())
    saved["train"]["jepa"]["encoder"]["dim"] = 12
    (run / "config.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match=r"encoder.head.weight: checkpoint has shape \(8, \d+\), model expects \(12, \d+\)"):
        load_model(run)


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 64, b"not a checkpoint at all" * 40, "half"])
def test_corrupt_checkpoint_is_a_checkpoint_error(finished_run, data_file, tmp_path, garbage):
    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    ckpt = run / "checkpoint.safetensors"
    if garbage == "half":
        garbage = ckpt.read_bytes()[: ckpt.stat().st_size // 2]
    ckpt.write_bytes(garbage)
    with pytest.raises(CheckpointError, match="checkpoint.safetensors"):
        read_checkpoint(ckpt)
    with pytest.raises(CheckpointError):
        load_model(run)
    with pytest.raises(CheckpointError):  # resuming refuses too, and leaves the file as it was
        train(ENV, run, tiny(), data=str(data_file), progress=False)
    assert ckpt.read_bytes() == garbage


def test_safetensors_file_of_another_program_is_a_checkpoint_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not an amia checkpoint"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint there"):
        read_checkpoint(tmp_path / "absent.safetensors")


# --------------------------------------------------------------------------------------------- schedule


def test_learning_rate_warmup_then_cosine_to_five_percent():
    cfg = TrainConfig(lr=1.0, warmup=10, steps=110)
    # warm-up: linear from lr/warmup at step 0 to lr at step warmup-1
    assert learning_rate(cfg, 0) == pytest.approx(0.1)
    assert learning_rate(cfg, 4) == pytest.approx(0.5)
    assert learning_rate(cfg, 9) == pytest.approx(1.0)
    # cosine over the remaining 100 steps, from lr down to 5% of lr
    assert learning_rate(cfg, 10) == pytest.approx(1.0)
    assert learning_rate(cfg, 35) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi / 4)))  # 0.8609
    assert learning_rate(cfg, 60) == pytest.approx(0.525)
    assert learning_rate(cfg, 85) == pytest.approx(0.05 + 0.95 * 0.5 * (1 - math.cos(math.pi / 4)))  # 0.1891
    assert learning_rate(cfg, 110) == pytest.approx(0.05)
    assert learning_rate(cfg, 500) == pytest.approx(0.05)  # past the end it stays at the floor
    lrs = [learning_rate(cfg, s) for s in range(111)]
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10])) and all(a > b for a, b in zip(lrs[10:110], lrs[11:111]))

    scaled = TrainConfig(lr=3e-4, warmup=0, steps=50)
    assert learning_rate(scaled, 0) == pytest.approx(3e-4)
    assert learning_rate(scaled, 25) == pytest.approx(3e-4 * 0.525)
    assert learning_rate(scaled, 50) == pytest.approx(3e-4 * 0.05)



def test_checkpoints_keep_their_on_disk_format_name(finished_run):
    """Runs written by earlier versions stay readable: the header's format name is part of the file format."""
    from safetensors import safe_open

    with safe_open(str(finished_run[0] / "checkpoint.safetensors"), "pt") as f:
        assert f.metadata()["format"] == "amia.checkpoint"
