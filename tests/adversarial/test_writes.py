"""No write outside the run and no overwrite of another run: symbolic links in a run directory are refused (the
file they point to is left as it was), ``refine``/``distill``/``collect`` never replace another run's or dataset's
files without ``--force``, and results files are checked before the long work."""

from __future__ import annotations

import json

import pytest

from amia.data.collect import CollectConfig, collect
from amia.infra.checkpoint import atomic_write_text, save_checkpoint
from amia.infra.run_dir import RunError
from amia.infra.validate import LinkError
from amia.training.distill import DistillConfig, distill
from amia.training.refine import RefineConfig, refine
from amia.training.world_model import train

from .conftest import ENV, FAST_EVAL, TINY, copy_run, one_error_line, run_cli, snapshot, tiny_config

OUTSIDE = "precious, outside the run\n"


def outside_file(tmp_path):
    target = tmp_path / "outside" / "precious.txt"
    target.parent.mkdir()
    target.write_text(OUTSIDE)
    return target


@pytest.mark.parametrize("name", ["log.jsonl", "checkpoint.safetensors.tmp", "config.json", "config.json.tmp"])
def test_train_refuses_a_linked_file_in_a_new_run(data_file, tmp_path, capsys, name):
    target, run = outside_file(tmp_path), tmp_path / "run"
    run.mkdir()
    (run / name).symlink_to(target)
    code, _, err = run_cli(["train", "--data", data_file, "--out", run, *TINY, "--quiet"], capsys)
    line = one_error_line(err)
    assert code == 2 and f"{run / name}: is a symbolic link" in line and "outside the run" in line
    assert target.read_text() == OUTSIDE


@pytest.mark.parametrize("name", ["metrics.json.tmp", "metrics.json", "log.jsonl"])
def test_rerunning_a_finished_run_refuses_a_linked_file(trained_run, data_file, tmp_path, name):
    target, run = outside_file(tmp_path), copy_run(trained_run, tmp_path / "run")
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(target)
    with pytest.raises(LinkError, match="is a symbolic link"):
        train(ENV, run, tiny_config(), data=str(data_file), progress=False)
    assert target.read_text() == OUTSIDE


@pytest.mark.parametrize("link", ["checkpoint.safetensors", "checkpoint.safetensors.tmp"])
def test_a_checkpoint_is_never_written_through_a_link(tmp_path, link):
    import torch

    target = outside_file(tmp_path)
    (tmp_path / link).symlink_to(target)
    with pytest.raises(LinkError):
        save_checkpoint(tmp_path / "checkpoint.safetensors", torch.nn.Linear(1, 1), None, {"step": 1})
    assert target.read_text() == OUTSIDE


def test_a_text_file_is_never_written_through_a_link(tmp_path):
    target = outside_file(tmp_path)
    (tmp_path / "summary.json").symlink_to(target)
    with pytest.raises(LinkError, match="summary.json: is a symbolic link"):
        atomic_write_text(tmp_path / "summary.json", "{}")
    assert target.read_text() == OUTSIDE


def test_collect_never_writes_through_a_linked_partial_file(tmp_path):
    target = outside_file(tmp_path)
    (tmp_path / "d.h5.partial").symlink_to(target)
    with pytest.raises(LinkError, match="d.h5.partial: is a symbolic link"):
        collect(ENV, tmp_path / "d.h5", CollectConfig(episodes=1, steps=2), progress=False)
    assert target.read_text() == OUTSIDE and not (tmp_path / "d.h5").exists()


COLLECT_OUT = [("link", "--out=", "a regular file, not a symbolic link"), ("dir", "--out=", "a file name, not a directory"),
               ("exists", "--out ", "the file exists; pass --force to replace it")]


@pytest.mark.parametrize("kind, option, words", COLLECT_OUT, ids=[k for k, _, _ in COLLECT_OUT])
def test_collect_refuses_an_out_it_would_damage(tmp_path, capsys, kind, option, words):
    target = outside_file(tmp_path)
    out = tmp_path / "d.h5"
    if kind == "link":
        out.symlink_to(target)
    elif kind == "dir":
        out.mkdir()
    else:
        out.write_text(OUTSIDE)
    code, _, err = run_cli(["collect", "--out", out, "--episodes", "1", "--steps", "2", "--quiet"], capsys)
    line = one_error_line(err)
    assert code == 2 and option in line and str(out) in line and words in line
    assert target.read_text() == OUTSIDE and (kind == "dir" or kind == "link" or out.read_text() == OUTSIDE)


def test_collect_with_force_replaces_a_file_and_makes_missing_folders(tmp_path, capsys):
    out = tmp_path / "d.h5"
    out.write_text("old")
    code, out_text, _ = run_cli(["collect", "--out", out, "--episodes", "1", "--steps", "2", "--force", "--quiet"], capsys)
    assert code == 0 and out.read_bytes()[:4] == b"\x89HDF" and "wrote 1 episodes" in out_text
    code, _, _ = run_cli(["collect", "--out", tmp_path / "new" / "folder" / "d.h5", "--episodes", "1", "--steps", "2",
                          "--quiet"], capsys)
    assert code == 0 and (tmp_path / "new" / "folder" / "d.h5").is_file()


def test_refine_refuses_an_out_that_holds_another_run(trained_run, tmp_path, capsys):
    other = copy_run(trained_run, tmp_path / "other")
    before = snapshot(other)
    code, _, err = run_cli(["refine", "--run", trained_run, "--out", other, "--quiet"], capsys)
    line = one_error_line(err)
    assert code == 2 and f"--out {other} holds another run" in line and "--force" in line
    assert snapshot(other) == before


def test_refine_refuses_its_own_run_and_a_file(trained_run, tmp_path):
    with pytest.raises(RunError, match="--out must differ from --run"):
        refine(trained_run, trained_run, RefineConfig(), progress=False)
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunError, match="a file, expected a run directory"):
        refine(trained_run, tmp_path / "f", RefineConfig(), progress=False)


def test_refine_refuses_a_refinement_of_another_run(trained_run, tmp_path):
    import torch

    out = tmp_path / "refined"
    out.mkdir()
    save_checkpoint(out / "refine_state.safetensors", torch.nn.Linear(1, 1), None,
                    {"config": {}, "summary": {"from_run": str(tmp_path / "elsewhere")}})
    with pytest.raises(RunError, match="holds a refinement of another run"):
        refine(trained_run, out, RefineConfig(), progress=False)


def test_distill_refuses_to_replace_a_policy_made_with_other_settings(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    (run / "distill.json").write_text(json.dumps({"config": {"episodes": 3, "rounds": 1}}))
    (run / "policy.safetensors").write_text("the earlier policy")
    with pytest.raises(RunError, match="distill.json: the run's policy and critic were made with other distill settings"):
        distill(run, DistillConfig(), progress=False)
    assert (run / "policy.safetensors").read_text() == "the earlier policy"


def test_distill_refuses_to_replace_a_policy_of_unknown_origin(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path / "run")
    (run / "policy.safetensors").write_text("a policy from elsewhere")
    code, _, err = run_cli(["distill", "--run", run, "--quiet"], capsys)
    assert code == 2 and "policy.safetensors exists but no distill.json" in one_error_line(err)
    assert (run / "policy.safetensors").read_text() == "a policy from elsewhere"


def test_train_refuses_an_out_that_is_a_file_or_holds_a_foreign_checkpoint(trained_run, data_file, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunError, match="a file, expected a run directory"):
        train(ENV, tmp_path / "f", tiny_config(), data=str(data_file), progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "checkpoint.safetensors").write_bytes((trained_run / "checkpoint.safetensors").read_bytes())
    before = snapshot(foreign)
    with pytest.raises(RunError, match="holds checkpoint.safetensors but no config.json"):
        train(ENV, foreign, tiny_config(), data=str(data_file), progress=False)
    assert snapshot(foreign) == before


RESULTS = [(["eval", "--run", "{run}", "--json", "{tmp}"], "--json="), (["eval", "--run", "{run}", "--gif", "{tmp}"], "--gif="),
           (["eval", "--run", "{run}", "--plot", "{tmp}"], "--plot="),
           (["demo", "--out", "{tmp}/demo", "--json", "{tmp}"], "--json=")]


@pytest.mark.parametrize("argv, option", RESULTS, ids=["eval-json", "eval-gif", "eval-plot", "demo-json"])
def test_a_results_file_naming_a_directory_is_refused_before_the_work(trained_run, tmp_path, capsys, argv, option):
    code, out, err = run_cli([a.format(run=trained_run, tmp=tmp_path) for a in argv] + ["--quiet"], capsys)
    line = one_error_line(err)
    assert code == 2 and f"{option}'{tmp_path}': expected a file name, not a directory" in line
    assert "success" not in out and not (tmp_path / "demo").exists()


@pytest.mark.parametrize("kind", ["link", "missing-folder"])
def test_a_results_file_that_cannot_be_written_safely_is_refused(trained_run, tmp_path, capsys, kind):
    target = outside_file(tmp_path)
    path = tmp_path / "r.json"
    if kind == "link":
        path.symlink_to(target)
    else:
        path = tmp_path / "nowhere" / "r.json"
    code, _, err = run_cli(["eval", "--run", trained_run, "--json", path, "--quiet"], capsys)
    line = one_error_line(err)
    assert code == 2 and f"--json='{path}': expected" in line and target.read_text() == OUTSIDE


def test_an_interrupted_evaluation_keeps_what_it_measured(trained_run, tmp_path, capsys, monkeypatch):
    import amia.eval.protocol as protocol

    real, calls = protocol.evaluate_actor, []

    def second_is_interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(protocol, "evaluate_actor", second_is_interrupted)
    path = tmp_path / "r.json"
    code, _, err = run_cli(["eval", "--run", trained_run, "--planner", "all", "--episodes", "2", *FAST_EVAL, "--quiet",
                            "--json", path], capsys)
    saved = json.loads(path.read_text())
    assert code == 130 and "interrupted" in err
    assert isinstance(saved, list) and len(saved) == 1 and saved[0]["planner"] == "gd" and saved[0]["episodes"] == 2


def test_a_failed_start_leaves_no_config_json_to_refuse_the_corrected_command(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--env", "amia/Maze-v0", "--out", out, *TINY, "collect.policy=doors",
                            "collect.episodes=2", "collect.steps=20", "--quiet"], capsys)
    assert code == 2 and "collect.policy=doors needs a rooms world" in one_error_line(err)
    assert not (out / "config.json").exists()


def test_train_refuses_bad_data_before_binding_the_run(data_file, tmp_path, capsys):
    from .conftest import arrays, write_file

    data = arrays(data_file)
    data["action"] = data["action"].copy()
    data["action"][11, 0] = float("nan")
    bad = write_file(tmp_path / "bad.h5", data)
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--data", bad, "--out", out, *TINY, "--quiet"], capsys)
    line = one_error_line(err)
    assert code == 2 and f"{bad}: dataset '/action' holds a non-finite value at index 11" in line
    assert not out.exists()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_corrupt_metrics_file_of_a_finished_run_is_rewritten_by_a_rerun(trained_run, data_file, tmp_path, text):
    run = copy_run(trained_run, tmp_path / "run")
    (run / "metrics.json").write_text(text)
    metrics = train(ENV, run, tiny_config(), data=str(data_file), progress=False)
    assert metrics["steps"] == 4 and json.loads((run / "metrics.json").read_text())["steps"] == 4
