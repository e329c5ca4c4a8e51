"""The command line: every expected failure is one line ``amia: error: ...`` naming the option, field, file or
value and what was expected, with exit code 2, before anything is written; ``--debug`` adds the traceback."""

from __future__ import annotations

import errno
import json

import pytest
import torch

from amia.cli import parse

from .conftest import FAST_EVAL, TINY, copy_run, one_error_line, run_cli

CUDA = torch.cuda.is_available()

TRAIN_BAD = [  # (override, the words the error line must hold)
    ("steps=-5", "steps=-5: expected an integer >= 1"), ("steps=0", "steps=0: expected an integer >= 1"),
    ("val_fraction=-1", "val_fraction=-1.0: expected a number in (0, 1)"),
    ("batch_size=0", "batch_size=0: expected an integer >= 2"), ("window=0", "window=0: expected an integer >= 1"),
    ("checkpoint_every=0", "checkpoint_every=0: expected"), ("log_every=0", "log_every=0: expected"),
    ("threads=-2", "threads=-2: expected an integer >= 0"), ("lr=-1", "lr=-1.0: expected a number > 0"),
    ("jepa.encoder.dim=0", "jepa.encoder.dim=0: expected"), ("collect.episodes=0", "collect.episodes=0: expected"),
    ("steps=abc", "'steps' should be int"), ("stepz=3", "did you mean 'steps'"),
    ("steps=[1,", "override steps=[1,: not a YAML value"),
    ("jepa.loss.regularizer=bogus", "jepa.loss.regularizer='bogus': expected one of vicreg, sigreg, none"),
]


@pytest.mark.parametrize("override, words", TRAIN_BAD, ids=[o for o, _ in TRAIN_BAD])
def test_train_refuses_a_bad_setting_before_creating_the_run(tmp_path, capsys, override, words):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--out", out, override, "--quiet"], capsys)
    assert code == 2 and words in one_error_line(err)
    assert not out.exists()  # no run directory, no config.json: the corrected command is not refused later


@pytest.mark.parametrize("device, words", [("bogus", "--device='bogus': expected cpu, cuda, cuda:N or mps"),
                                           ("cuda:x", "--device='cuda:x': expected"),
                                           ("cuda:99", "--device='cuda:99'")])
def test_train_refuses_an_unknown_or_absent_device(tmp_path, capsys, device, words):
    code, _, err = run_cli(["train", "--out", tmp_path / "run", "--device", device], capsys)
    assert code == 2 and words in one_error_line(err) and not (tmp_path / "run").exists()


@pytest.mark.skipif(CUDA, reason="this machine has a GPU")
@pytest.mark.parametrize("command", [["train", "--out", "{tmp}/run"], ["demo", "--out", "{tmp}/run"],
                                     ["eval", "--run", "{run}"], ["refine", "--run", "{run}", "--out", "{tmp}/r"]])
def test_cuda_on_a_machine_without_a_gpu_is_one_clear_line(tmp_path, capsys, trained_run, command):
    argv = [a.format(tmp=tmp_path, run=trained_run) for a in command] + ["--device", "cuda"]
    code, _, err = run_cli(argv, capsys)
    line = one_error_line(err)
    assert code == 2 and "--device='cuda'" in line and "no CUDA GPU" in line and not (tmp_path / "run").exists()


COUNTED = [(["demo", "--out", "{tmp}/run", "--episodes", "0"], "--episodes: '0': expected an integer >= 1"),
           (["eval", "--run", "{tmp}", "--episodes", "0"], "--episodes: '0': expected an integer >= 1"),
           (["eval", "--run", "{tmp}", "--episodes", "-3"], "--episodes: '-3': expected an integer >= 1"),
           (["eval", "--run", "{tmp}", "--seed", "-1"], "--seed: '-1': expected an integer >= 0"),
           (["collect", "--out", "{tmp}/d.h5", "--episodes", "0"], "--episodes: '0': expected"),
           (["collect", "--out", "{tmp}/d.h5", "--steps", "x"], "--steps: 'x': expected an integer >= 1"),
           (["distill", "--run", "{tmp}", "--rounds", "0"], "--rounds: '0': expected"),
           (["refine", "--run", "{tmp}", "--out", "{tmp}/r", "--episodes", "0"], "--episodes: '0': expected"),
           (["train", "--out", "{tmp}/run", "--levels", "3"], "--levels: invalid choice: 3"),
           (["train", "--out", "{tmp}/run", "--bogus"], "unrecognized arguments: --bogus"),
           # `eval` without --run: refused after parsing (--oracle needs none), tests/test_oracle.py
           (["fly"], "invalid choice: 'fly'")]


@pytest.mark.parametrize("argv, words", COUNTED, ids=[" ".join(a[:1] + a[-2:]) for a, _ in COUNTED])
def test_a_bad_option_names_the_option_not_an_internal_field(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as e:
        parse([a.format(tmp=tmp_path) for a in argv])
    assert e.value.code == 2
    assert words in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


EVAL_BAD = [("replan_every=0", "replan_every=0: expected an integer >= 1"),
            ("planning.horizon=0", "planning.horizon=0: expected an integer >= 1"),
            ("max_steps=0", "max_steps=0: expected an integer >= 1 (or null"),
            ("planning.iterations=0", "planning.iterations=0: expected"),
            ("hierarchy.subgoal=0", "hierarchy.subgoal=0: expected"), ("planner=astar", "planner='astar': expected"),
            ("surprise.explore=dance", "surprise.explore='dance': expected one of random, back_off")]


@pytest.mark.parametrize("override, words", EVAL_BAD, ids=[o for o, _ in EVAL_BAD])
def test_eval_refuses_a_bad_setting(trained_run, capsys, override, words):
    code, out, err = run_cli(["eval", "--run", trained_run, override, "--quiet"], capsys)
    assert code == 2 and words in one_error_line(err) and "success" not in out


def test_overrides_may_stand_anywhere_and_keep_their_order():
    args = parse(["train", "steps=5", "--out", "x", "batch_size=4", "--quiet", "steps=7"])
    assert args.out == "x" and args.overrides == ["steps=5", "batch_size=4", "steps=7"]
    args = parse(["eval", "max_steps=3", "--run", "r", "--debug", "planning.horizon=3"])
    assert args.run == "r" and args.debug and args.overrides == ["max_steps=3", "planning.horizon=3"]


def test_debug_shows_the_traceback_and_still_ends_with_the_line(tmp_path, capsys):
    code, _, err = run_cli(["--debug", "train", "--out", tmp_path / "run", "steps=0"], capsys)
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("amia: error: steps=0")
    code, _, err = run_cli(["train", "--out", tmp_path / "run", "steps=0", "--debug"], capsys)
    assert code == 2 and "Traceback" in err


YAML = [  # (file text, the words the error line must hold besides the file's name)
    ("steps: !!python/object:os.system ls\n", "not valid YAML"), ("steps: [1, 2\n", "not valid YAML"),
    ("- steps\n- 3\n", "should hold a mapping, got list"), ("steps: -5\n", "steps=-5: expected an integer >= 1"),
    ("jepa:\n  encoder:\n    dim: 0\n", "jepa.encoder.dim=0: expected"), ("stepz: 3\n", "did you mean 'steps'"),
    ("jepa: 3\n", "'jepa' should be a mapping"), ("\x00\x01binary", "not valid YAML"),
]


@pytest.mark.parametrize("text, words", YAML, ids=["bad-tag", "bad-syntax", "a-list", "steps-negative", "nested-zero",
                                                   "unknown-key", "not-a-section", "binary"])
def test_a_bad_yaml_preset_names_the_file(tmp_path, capsys, text, words):
    preset = tmp_path / "preset.yaml"
    preset.write_text(text)
    code, _, err = run_cli(["train", "--config", preset, "--out", tmp_path / "run"], capsys)
    line = one_error_line(err)
    assert code == 2 and str(preset) in line and words in line and not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_unreadable_preset_names_the_file(tmp_path, capsys, kind):
    preset = tmp_path / "preset.yaml"
    if kind == "directory":
        preset.mkdir()
    code, _, err = run_cli(["eval", "--run", tmp_path, "--config", preset], capsys)
    line = one_error_line(err)
    assert code == 2 and str(preset) in line and "cannot read the config file" in line


CONFIG_JSON = [("[1, 2]", "expected a mapping with 'env_id' and a 'train' section, got list"),
               ('{"env_id": "amia/TwoRooms-v0"}', "got keys env_id"), ("{not json", "not valid JSON"),
               ('{"env_id": "amia/TwoRooms-v0", "train": {"jepa": {"encoder": {"dim": 0}}}}',
                "train.jepa.encoder.dim=0: expected"),
               ('{"env_id": "amia/TwoRooms-v0", "train": {"jepa": {"encodr": {}}}}', "did you mean 'encoder'")]


@pytest.mark.parametrize("text, words", CONFIG_JSON, ids=["a-list", "no-train-section", "not-json", "bad-field",
                                                          "unknown-section"])
def test_a_bad_config_json_names_the_file(trained_run, tmp_path, capsys, text, words):
    run = copy_run(trained_run, tmp_path / "run")
    (run / "config.json").write_text(text)
    code, _, err = run_cli(["eval", "--run", run, "--quiet"], capsys)
    line = one_error_line(err)
    assert code == 2 and str(run / "config.json") in line and words in line


def test_a_missing_run_names_the_directory(tmp_path, capsys):
    code, _, err = run_cli(["eval", "--run", tmp_path / "nowhere"], capsys)
    assert code == 2 and "nowhere: no config.json; not a run directory" in one_error_line(err)


def test_level2_overrides_need_two_levels_and_are_named_as_written(tmp_path, capsys):
    code, _, err = run_cli(["train", "--out", tmp_path / "run", "level2.stride=4"], capsys)
    assert code == 2 and "need --levels 2" in one_error_line(err)
    code, _, err = run_cli(["train", "--out", tmp_path / "run", "--levels", "2", "level2.stride=0"], capsys)
    assert code == 2 and "level2.stride=0: expected an integer >= 1" in one_error_line(err)
    code, _, err = run_cli(["train", "--out", tmp_path / "run", "--levels", "2", "critic2.gamma=1"], capsys)
    assert code == 2 and "critic2.gamma=1.0: expected a number in (0, 1)" in one_error_line(err)
    assert not (tmp_path / "run").exists()


OS_ERRORS = [(errno.ENOSPC, "No space left on device", "the disk is full"),
             (errno.EACCES, "Permission denied", "may not write or read there"),
             (errno.EROFS, "Read-only file system", "read-only file system")]


@pytest.mark.parametrize("code_, text, words", OS_ERRORS, ids=["disk-full", "permission", "read-only"])
def test_an_os_error_while_writing_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch, code_, text, words):
    target = tmp_path / "d.h5"

    def failing(*args, **kwargs):
        raise OSError(code_, text, str(target))

    monkeypatch.setattr("amia.data.collect", failing)
    code, _, err = run_cli(["collect", "--out", target, "--episodes", "1", "--steps", "2", "--quiet"], capsys)
    line = one_error_line(err)
    assert code == 2 and str(target) in line and text in line and words in line


def test_a_bad_env_id_is_named(tmp_path, capsys):
    code, _, err = run_cli(["train", "--env", "amia/Nowhere-v0", "--out", tmp_path / "run", *TINY], capsys)
    assert code == 2 and "unknown env id 'amia/Nowhere-v0'" in one_error_line(err)
    assert not (tmp_path / "run").exists()


def test_info_summarises_a_good_file(data_file, capsys):
    code, out, err = run_cli(["info", data_file], capsys)
    assert code == 0 and err == "" and "6 episodes, 126 frames" in out and "obs (2, 64, 64)" in out


def test_eval_succeeds_on_a_good_run(trained_run, tmp_path, capsys):
    code, out, _ = run_cli(["eval", "--run", trained_run, "--episodes", "2", *FAST_EVAL, "--quiet", "--json",
                            tmp_path / "r.json"], capsys)
    result = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and result["episodes"] == 2 and len(result["final_distance_px"]) == 2
    assert 0.0 <= result["success_rate"] <= 1.0 and "wrote" in out
