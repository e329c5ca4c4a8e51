"""Crafted checkpoints: non-finite weights, missing or bad metadata, corrupt files, and checkpoints of other runs
are refused with a ``CheckpointError`` / ``RunError`` (or the command's one line) naming the file and what is
wrong; a refused resume leaves the checkpoint as it was."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from amia.infra.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from amia.infra.run_dir import RunError, load_level2, load_model, load_parts
from amia.training.world_model import train

from .conftest import ENV, FAST_EVAL, copy_run, one_error_line, run_cli, tiny_config


def rewrite(path, meta=None, tensors=None, header=None) -> None:
    """Rewrite a checkpoint: ``meta(dict) -> dict``, ``tensors(dict) -> dict``, ``header(dict) -> dict``."""
    t = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        h = dict(f.metadata())
    if meta is not None:
        h["meta"] = json.dumps(meta(json.loads(h["meta"])))
    if header is not None:
        h = header(h)
    save_file(tensors(t) if tensors else t, str(path), metadata=h)


def without(*keys):
    return lambda m: {k: v for k, v in m.items() if k not in keys}


def poisoned(value, first_only=False):
    def change(t):
        names = [k for k in t if k.startswith("model/") and t[k].is_floating_point()]
        return {k: (torch.full_like(v, value) if k in names[: 1 if first_only else None] else v) for k, v in t.items()}
    return change


@pytest.mark.parametrize("value, everywhere", [(math.nan, True), (math.inf, False), (-math.inf, False), (math.nan, False)],
                         ids=["all-nan", "one-inf", "one-minus-inf", "one-nan"])
def test_non_finite_weights_are_refused_on_load(trained_run, tmp_path, value, everywhere):
    run = copy_run(trained_run, tmp_path / "run")
    rewrite(run / "checkpoint.safetensors", tensors=poisoned(value, first_only=not everywhere))
    with pytest.raises(CheckpointError) as e:
        load_model(run)
    msg = str(e.value)
    assert msg.startswith(f"{run / 'checkpoint.safetensors'}: refused:") and "hold NaN or inf (model/" in msg


def test_an_all_nan_checkpoint_does_not_evaluate_to_a_success_rate(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path / "run")
    rewrite(run / "checkpoint.safetensors", tensors=poisoned(math.nan))
    code, out, err = run_cli(["eval", "--run", run, "--episodes", "2", *FAST_EVAL, "--quiet"], capsys)
    line = one_error_line(err)
    assert code == 2 and "checkpoint.safetensors: refused" in line and "success" not in out


META = [("obs_shape", "lacks the field 'obs_shape'"), ("action_dim", "lacks the field 'action_dim'")]


@pytest.mark.parametrize("field, words", META, ids=[f for f, _ in META])
def test_a_checkpoint_lacking_a_metadata_field_is_named(trained_run, tmp_path, capsys, field, words):
    run = copy_run(trained_run, tmp_path / "run")
    rewrite(run / "checkpoint.safetensors", meta=without(field))
    code, _, err = run_cli(["eval", "--run", run, "--quiet"], capsys)
    line = one_error_line(err)
    assert code == 2 and str(run / "checkpoint.safetensors") in line and words in line


@pytest.mark.parametrize("field", ["step", "seconds", "env_id", "obs_shape"])
def test_resume_names_a_missing_metadata_field(trained_run, data_file, tmp_path, field):
    run = copy_run(trained_run, tmp_path / "run")
    before = (run / "checkpoint.safetensors").read_bytes()
    rewrite(run / "checkpoint.safetensors", meta=without(field))
    edited = (run / "checkpoint.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match=f"lacks the field '{field}'"):
        train(ENV, run, tiny_config(), data=str(data_file), progress=False)
    assert (run / "checkpoint.safetensors").read_bytes() == edited != before


HEADER = [("meta-not-json", lambda h: {**h, "meta": "{oops"}, "metadata is missing or not JSON"),
          ("meta-missing", lambda h: {k: v for k, v in h.items() if k != "meta"}, "metadata is missing or not JSON"),
          ("meta-a-list", lambda h: {**h, "meta": "[1, 2]"}, "should be a JSON object, got list"),
          ("other-format", lambda h: {**h, "format": "torch"}, "not an amia checkpoint (format 'torch')")]


@pytest.mark.parametrize("name, header, words", HEADER, ids=[n for n, _, _ in HEADER])
def test_a_bad_header_is_named(trained_run, tmp_path, name, header, words):
    run = copy_run(trained_run, tmp_path / "run")
    rewrite(run / "checkpoint.safetensors", header=header)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(run / "checkpoint.safetensors")
    assert str(e.value).startswith(str(run / "checkpoint.safetensors")) and words in str(e.value)


@pytest.mark.parametrize("kind", ["truncated", "empty", "garbage", "directory"])
def test_an_unreadable_checkpoint_is_named(trained_run, tmp_path, kind):
    path = tmp_path / "checkpoint.safetensors"
    good = (trained_run / "checkpoint.safetensors").read_bytes()
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes({"truncated": good[: len(good) // 2], "empty": b"", "garbage": b"\x00\xff" * 64}[kind])
    with pytest.raises(CheckpointError, match=f"{path}: not a readable safetensors checkpoint"):
        read_checkpoint(path)


OTHER_RUN = [  # a checkpoint of another run copied in: (meta change, the words naming the difference)
    ("wall", lambda m: {**m, "env_id": "amia/Wall-v0"}, "env_id: was 'amia/Wall-v0', now 'amia/TwoRooms-v0'"),
    ("maze", lambda m: {**m, "env_id": "amia/Maze-v0", "obs_shape": [2, 96, 96]}, "env_id: was 'amia/Maze-v0'"),
    ("other-lr", lambda m: {**m, "config": {**m["config"], "lr": 0.5}}, "lr: was 0.5, now 0.001"),
    ("other-seed", lambda m: {**m, "config": {**m["config"], "seed": 3}}, "seed: was 3, now 0"),
    ("other-action-dim", lambda m: {**m, "action_dim": 3}, "action_dim: was 3, now 2"),
]


@pytest.mark.parametrize("name, meta, words", OTHER_RUN, ids=[n for n, _, _ in OTHER_RUN])
def test_a_checkpoint_of_another_run_is_refused_and_left_unchanged(trained_run, data_file, tmp_path, name, meta, words):
    run = copy_run(trained_run, tmp_path / "run")
    rewrite(run / "checkpoint.safetensors", meta=meta)
    before = (run / "checkpoint.safetensors").read_bytes()
    with pytest.raises(RunError) as e:
        train(ENV, run, tiny_config(), data=str(data_file), progress=False)
    assert "does not belong to this run" in str(e.value) and words in str(e.value), str(e.value)
    assert (run / "checkpoint.safetensors").read_bytes() == before  # its metadata is not rewritten


@pytest.mark.parametrize("step", [99, -1, "4"])
def test_a_step_outside_the_run_is_refused(trained_run, data_file, tmp_path, step):
    run = copy_run(trained_run, tmp_path / "run")
    rewrite(run / "checkpoint.safetensors", meta=lambda m: {**m, "step": step})
    with pytest.raises(CheckpointError, match=f"step={step!r}: expected an integer in \\[0, 4\\]"):
        train(ENV, run, tiny_config(), data=str(data_file), progress=False)


def test_non_finite_weights_are_never_saved_over_a_good_checkpoint(tmp_path):
    model = torch.nn.Linear(2, 2)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, None, {"step": 1})
    before = path.read_bytes()
    with torch.no_grad():
        model.weight[0, 0] = math.nan
    with pytest.raises(CheckpointError, match="not saved: model/weight hold non-finite values"):
        save_checkpoint(path, model, None, {"step": 2})
    assert path.read_bytes() == before and not (tmp_path / "c.safetensors.tmp").exists()


def test_a_level2_checkpoint_lacking_a_field_is_named(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path / "run")
    save_checkpoint(run / "level2.safetensors", torch.nn.Linear(1, 1), None, {"config": {"steps": 1}, "step": 1})
    with pytest.raises(CheckpointError, match="level2.safetensors: the checkpoint's metadata lacks the field 'level1_dim'"):
        load_level2(run)
    code, _, err = run_cli(["eval", "--run", run, "--hierarchical", "--quiet"], capsys)
    assert code == 2 and "lacks the field 'level1_dim'" in one_error_line(err)


@pytest.mark.parametrize("name, field", [("policy.safetensors", "bound"), ("critic.safetensors", "critic")])
def test_a_distilled_part_lacking_a_field_is_named(trained_run, tmp_path, name, field):
    run = copy_run(trained_run, tmp_path / "run")
    save_checkpoint(run / name, torch.nn.Linear(1, 1), None, {"state_dim": 8, "action_dim": 2, "policy": {}})
    with pytest.raises(CheckpointError, match=f"{name}: the checkpoint's metadata lacks the field '{field}'"):
        load_parts(run, 8)


def test_an_intact_checkpoint_loads(trained_run):
    model, saved = load_model(trained_run)
    assert saved["env_id"] == ENV and model.action_dim == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
