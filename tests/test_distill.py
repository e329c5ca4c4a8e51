"""`amia distill` and Mode-1 / task evaluation end to end on a tiny run (seconds on two cores)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from amia.agent.surprise import SurpriseConfig
from amia.cli import main as cli_main
from amia.data.collect import CollectConfig, collect
from amia.eval.protocol import EvalConfig, evaluate
from amia.infra.checkpoint import read_checkpoint
from amia.infra.run_dir import load_model, load_parts
from amia.models.encoder import EncoderConfig
from amia.models.jepa import JEPAConfig
from amia.models.policy import PolicyConfig
from amia.models.predictor import PredictorConfig
from amia.planning.planners import PlannerConfig
from amia.training.distill import CriticConfig, DistillConfig, distill
from amia.training.policy import AmortiseConfig
from amia.training.world_model import TrainConfig, train

ENV = "amia/TwoRooms-v0"
SMALL_PLAN = PlannerConfig(horizon=4, iterations=2, warm_iterations=1, restarts=2, samples=8, elites=2)
CFG = DistillConfig(rounds=2, episodes=4, steps=8, policy=PolicyConfig(hidden=16, layers=1, steps=20, batch_size=16),
                    critic=CriticConfig(hidden=16, layers=1, steps=20, batch_size=16),
                    amortise=AmortiseConfig(horizon=2, steps=10, batch_size=16), planning=SMALL_PLAN)


pytestmark = pytest.mark.usefixtures("restore_threads")


@pytest.fixture(scope="module")
def distilled(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("distill")
    collect(ENV, root / "data.h5", CollectConfig(episodes=8, steps=20, batch=8), progress=False)
    cfg = TrainConfig(steps=4, batch_size=8, window=4, val_every=0, log_every=2, checkpoint_every=2, diag_windows=16,
                      threads=1, jepa=JEPAConfig(encoder=EncoderConfig(dim=8, channels=(4, 8), downsample=4),
                                                 predictor=PredictorConfig(hidden=16)))
    run = root / "run"
    train(ENV, run, cfg, data=str(root / "data.h5"), progress=False)
    summary = distill(run, CFG, progress=False)
    return run, summary


def test_distill_writes_policy_critic_probe_and_a_summary(distilled):
    run, summary = distilled
    for name in ("policy.safetensors", "critic.safetensors", "probe.safetensors", "distill.json"):
        assert (run / name).exists()
    assert json.loads((run / "distill.json").read_text())["rounds"] == summary["rounds"]
    # round 0 labels every Mode-2 step (4 x 8); round 1 labels Mode-1's states every replan_every=4 steps (4 x 2)
    assert [r["labels"] for r in summary["rounds"]] == [32, 40]
    # the critic learned from memory: every perceived state of both rounds, and nothing else
    assert summary["memory_writes"] == 2 * 4 * 8 == summary["memory_entries"] == summary["critic_examples"]
    assert summary["amortise_states"] == 2 * 4 * 8  # the amortised policy trained on the same perceived states
    parts = load_parts(run, 8)
    assert parts["policy"] is not None and parts["critic"] is not None and parts["position"].weight.shape == (9, 2)
    with pytest.raises(ValueError, match="expects 8-D states, the model gives 16"):
        load_parts(run, 16)


def test_mode1_policy_init_critic_and_tasks_evaluate(distilled):
    run, _ = distilled
    base = EvalConfig(episodes=3, max_steps=6, replan_every=2, timing_calls=2, planning=SMALL_PLAN)

    def rates_agree(r: dict) -> None:  # the rate is what the per-episode distances say (the reach task)
        assert r["success_rate"] == pytest.approx(np.mean(np.array(r["final_distance_px"]) < 4.5))

    m1 = evaluate(run, EvalConfig(**{**base.__dict__, "mode": 1}), progress=False)
    assert m1["planner"] == "policy" and m1["ms_per_plan_median"] > 0 and m1["ms_per_action_mean"] > 0
    assert m1["predictor_calls_per_step"] is None
    rates_agree(m1)
    m2 = evaluate(run, EvalConfig(**{**base.__dict__, "policy_init": True, "critic_weight": 1.0}), progress=False)
    assert m2["planner"] == "gd" and m2["config"]["critic_weight"] == 1.0 and m2["config"]["policy_init"]
    rates_agree(m2)
    avoid = evaluate(run, EvalConfig(**{**base.__dict__, "task": "reach_avoid"}), progress=False)
    entered = round(avoid["region_entry_rate"] * 3)  # episodes that entered, each with at least one step inside
    assert entered <= avoid["steps_inside_region"] and (entered == 0) == (avoid["steps_inside_region"] == 0)
    assert avoid["success_rate"] <= np.mean(np.array(avoid["final_distance_px"]) < 4.5)  # entering the region fails
    away = evaluate(run, EvalConfig(**{**base.__dict__, "task": "keep_away"}), progress=False)
    assert away["ms_per_plan_median"] is None  # the moving point is not timed
    if away["success_rate"] == 1.0:  # every episode kept at least the task's radius (12 px) from the point
        assert away["mean_min_point_distance_px"] >= 12.0


def test_mode2_starts_from_the_policy_by_default_once_distilled(distilled, tmp_path):
    run, _ = distilled
    # warm_iterations=1 and restarts=2 tell the budgets apart
    plan = PlannerConfig(**{**SMALL_PLAN.__dict__, "policy_iterations": 3, "policy_restarts": 3})
    base = EvalConfig(episodes=2, max_steps=4, replan_every=2, timing_calls=1, planning=plan)
    # (iterations + 1) * restarts * horizon 4 per re-plan, every 2 steps, plus the surprise check's call per step
    auto = evaluate(run, base, progress=False)
    assert auto["policy_init"] is True and auto["surprise_watch"] is True
    assert auto["predictor_calls_per_step"] == (3 + 1) * 3 * 4 / 2 + 1
    off = evaluate(run, EvalConfig(**{**base.__dict__, "policy_init": False}), progress=False)
    # without the policy: the warm budget, and no surprise watch (on by default only when acting from the policy)
    assert off["policy_init"] is False and off["surprise_watch"] is False
    assert off["predictor_calls_per_step"] == (1 + 1) * 2 * 4 / 2
    assert evaluate(run, EvalConfig(**{**base.__dict__, "surprise": SurpriseConfig(enabled=False)}),
                    progress=False)["predictor_calls_per_step"] == (3 + 1) * 3 * 4 / 2
    other_task = evaluate(run, EvalConfig(**{**base.__dict__, "task": "reach_avoid"}), progress=False)
    assert other_task["policy_init"] is False  # the policy was distilled for reaching goals only
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("checkpoint.safetensors", "config.json"):
        shutil.copy(run / name, bare / name)
    assert evaluate(bare, base, progress=False)["policy_init"] is False  # no policy: plans start as before


def test_cli_mode1_needs_a_distilled_policy(distilled, tmp_path, capsys):
    run, _ = distilled
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("checkpoint.safetensors", "config.json"):
        shutil.copy(run / name, bare / name)
    assert cli_main(["eval", "--run", str(bare), "--mode", "1", "--episodes", "2"]) == 2
    assert "amia distill" in capsys.readouterr().err
    assert cli_main(["eval", "--run", str(run), "--mode", "1", "--episodes", "2", "max_steps=4", "timing_calls=1",
                     "--quiet"]) == 0
    assert "policy" in capsys.readouterr().out


def test_reflex_end_to_end_from_the_command_line(distilled, tmp_path, capsys):
    """`amia reflex` on a distilled run writes the reflex (round 0's labels: every step of every episode; later
    rounds add as many), `amia eval --reflex` acts with it and times it; the errors name what is missing."""
    run, _ = distilled
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    args = ["reflex", "--run", str(copy), "--rounds", "2", "--episodes", "3", "steps=5", "fit_steps=10", "--quiet"]
    assert cli_main(args) == 0
    summary = json.loads((copy / "reflex.json").read_text())
    assert [r["labels"] for r in summary["rounds"]] == [15, 30]
    assert [r["acting"] for r in summary["rounds"]] == ["policy", "reflex"]
    assert cli_main(args) == 2 and "pass --force" in capsys.readouterr().err
    out = tmp_path / "r.json"
    assert cli_main(["eval", "--run", str(copy), "--reflex", "--episodes", "2", "max_steps=4", "timing_calls=3",
                     "--quiet", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["planner"] == "reflex" and r["mode"] == 1 and r["ms_per_action_mean"] > 0
    assert cli_main(["eval", "--run", str(run), "--reflex", "--episodes", "2"]) == 2
    assert "amia reflex --run RUN" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("checkpoint.safetensors", "config.json"):
        shutil.copy(run / name, bare / name)
    assert cli_main(["reflex", "--run", str(bare), "--quiet"]) == 2
    assert "amia distill --run" in capsys.readouterr().err


def test_an_interrupted_reflex_resumes_from_its_last_round_and_ends_the_same(distilled, tmp_path):
    from amia.training.reflex import ReflexTrainConfig, train_reflex

    run, _ = distilled
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for d in (whole, cut):
        shutil.copytree(run, d)
    cfg = ReflexTrainConfig(rounds=2, episodes=3, steps=5, fit_steps=10)
    train_reflex(whole, cfg, progress=False)
    train_reflex(cut, ReflexTrainConfig(rounds=1, episodes=3, steps=5, fit_steps=10), progress=False)
    for name in ("reflex.safetensors", "reflex.json"):  # as if stopped after its first round
        (cut / name).unlink()
    summary = train_reflex(cut, cfg, progress=False)
    assert [r["round"] for r in summary["rounds"]] == [0, 1]
    a, _, _ = read_checkpoint(whole / "reflex.safetensors")
    b, _, _ = read_checkpoint(cut / "reflex.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    (cut / "reflex.safetensors").unlink()
    with pytest.raises(ValueError, match="other reflex settings"):
        train_reflex(cut, ReflexTrainConfig(rounds=2, episodes=3, steps=5, fit_steps=11), progress=False)


def test_an_interrupted_distill_resumes_from_its_last_round_and_ends_the_same(distilled, tmp_path):
    run, _ = distilled
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for f in ("checkpoint.safetensors", "config.json"):
            shutil.copy(run / f, tmp_path / name / f)
    one = DistillConfig(**{**CFG.__dict__, "rounds": 1})
    distill(tmp_path / "a", one, progress=False)  # "interrupted" after 1
    resumed = distill(tmp_path / "a", CFG, progress=False)
    whole = distill(tmp_path / "b", CFG, progress=False)
    assert resumed["rounds"] == whole["rounds"] and resumed["memory_writes"] == whole["memory_writes"]
    for f in ("policy.safetensors", "critic.safetensors"):
        a, _, _ = read_checkpoint(tmp_path / "a" / f)
        b, _, _ = read_checkpoint(tmp_path / "b" / f)
        assert all(torch.equal(a[k], b[k]) for k in a)
    other = DistillConfig(**{**CFG.__dict__, "episodes": 3})
    with pytest.raises(ValueError, match="other distill settings"):
        distill(tmp_path / "a", other, progress=False)
    # the critic and the amortisation follow the rounds: other settings redo them alone, from the same memory
    mc = DistillConfig(**{**CFG.__dict__, "critic": CriticConfig(stride=2, hidden=16, layers=1, steps=20,
                                                                 batch_size=16),
                          "amortise": AmortiseConfig(enabled=False)})
    again = distill(tmp_path / "a", mc, progress=False)
    assert again["rounds"] == whole["rounds"] and again["critic_examples"] == whole["critic_examples"]
    assert "amortise_states" not in again
    # not amortised, the saved policy is the label-fitted one of the rounds, the uninterrupted job's resume point
    a, _, _ = read_checkpoint(tmp_path / "a" / "policy.safetensors")
    b, _, _ = read_checkpoint(tmp_path / "b" / "distill_state.safetensors")
    assert all(torch.equal(a[k], b["model/policy." + k[len("model/"):]]) for k in a)
    amortised, _, _ = read_checkpoint(tmp_path / "b" / "policy.safetensors")
    assert not all(torch.equal(a[k], amortised[k]) for k in a)  # the amortisation moved the policy
    with pytest.raises(ValueError, match="stride=0: expected"):
        CriticConfig(stride=0)


@pytest.mark.parametrize("mode", [1, 2])
def test_labels_are_the_mean_of_the_planned_actions_over_the_label_span(distilled, monkeypatch, mode):
    """Mode 2 labels every step with the mean of the executing plan's next ``label_span`` actions; mode 1 labels
    every ``replan_every`` steps from a cold plan (full budget) started from the policy's proposal."""
    from amia.agent.episodes import run_episodes
    from amia.agent.flat import FlatActor
    from amia.cost.configurator import configure
    from amia.envs import evaluation_set, start_episodes

    run, _ = distilled
    model, _ = load_model(run)
    parts = load_parts(run, 8)
    calls = []
    ramp = torch.arange(4 * 2, dtype=torch.float32).reshape(1, 4, 2) / 10  # plan actions 0.0, 0.1, ..., 0.7

    def fake_plan(self, s, goal, previous, policy_init, generator, point=None, cold=False, trail=None):
        calls.append((policy_init, cold))
        return ramp.expand(s.shape[0], -1, -1) + len(calls)

    monkeypatch.setattr(FlatActor, "plan", fake_plan)
    actor = FlatActor(model, configure("reach", mode=mode), planning=SMALL_PLAN, replan_every=2, label_span=3,
                      policy=parts["policy"] if mode == 1 else None)
    world, goal_obs = start_episodes(ENV, evaluation_set(ENV, 3, seed=5))
    out = run_episodes(actor, world, goal_obs, steps=4)
    got = out["labels"]["action"]
    if mode == 2:  # plans at t = 0 and 2; step t labels with plan[k : k + 3], k = t % 2
        expected = [ramp[0, k:k + 3].mean(0) + p for p, k in ((1, 0), (1, 1), (2, 0), (2, 1))]
        assert calls == [(False, False), (False, False)]
    else:
        expected = [ramp[0, :3].mean(0) + p for p in (1, 2)]
        assert calls == [(True, True), (True, True)]
    assert got.shape == (3 * len(expected), 2)
    assert torch.allclose(got, torch.stack(expected).repeat_interleave(3, dim=0))
