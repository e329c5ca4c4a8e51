"""The Mode-2 goal-reaching protocol: determinism, clear errors, and the CLI around it."""

import json

import numpy as np
import pytest
import torch

from amia.agent.load import AgentError, build_actor, check_compatible
from amia.eval.protocol import EvalConfig, evaluate_actor, run_protocol
from amia.infra.validate import FieldError
from amia.models.encoder import EncoderConfig
from amia.models.jepa import JEPA, JEPAConfig
from amia.models.predictor import PredictorConfig
from amia.planning.planners import PlannerConfig


def tiny_model(action_dim: int = 2, obs_shape=(2, 64, 64)) -> JEPA:
    torch.manual_seed(0)
    cfg = JEPAConfig(encoder=EncoderConfig(dim=8, channels=(4, 8), downsample=4), predictor=PredictorConfig(hidden=16))
    return JEPA(cfg, obs_shape, action_dim)


def actor(cfg: EvalConfig, model: JEPA | None = None):
    return build_actor(model or tiny_model(), cfg, 2.45)


def evaluate(model: JEPA, env: str, cfg: EvalConfig, progress: bool = False) -> dict:
    return evaluate_actor(actor(cfg, model), env, cfg, progress)


def run_episodes(model: JEPA, env: str, cfg: EvalConfig, progress: bool = False) -> dict:
    return run_protocol(actor(cfg, model), env, cfg, progress)


FAST = EvalConfig(episodes=3, max_steps=6, replan_every=2, timing_calls=2,
                  planning=PlannerConfig(horizon=4, iterations=2, warm_iterations=1, samples=8, elites=2, restarts=2))


@pytest.mark.parametrize("planner", ["gd", "cem", "mppi", "hybrid"])
def test_protocol_is_deterministic_for_a_seed(planner):
    cfg = EvalConfig(**{**FAST.__dict__, "planner": planner})
    a = run_episodes(tiny_model(), "amia/TwoRooms-v0", cfg, progress=False)
    b = run_episodes(tiny_model(), "amia/TwoRooms-v0", cfg, progress=False)
    np.testing.assert_array_equal(a["final_distance"], b["final_distance"])
    c = run_episodes(tiny_model(), "amia/TwoRooms-v0", EvalConfig(**{**cfg.__dict__, "seed": 1}), progress=False)
    assert not np.array_equal(a["final_distance"], c["final_distance"])  # another seed: other start/goal pairs


def test_evaluate_reports_the_protocol_fields():
    r = evaluate(tiny_model(), "amia/TwoRooms-v0", FAST, progress=False)
    assert set(r) >= {"env", "planner", "episodes", "success_rate", "strict_success_rate", "mean_final_distance_px",
                      "ms_per_plan_median"}
    # three episodes: rates are multiples of 1/3; an untrained model ends far from goals in opposite rooms
    assert r["success_rate"] * 3 == pytest.approx(round(r["success_rate"] * 3))
    assert r["mean_final_distance_px"] > 4.5
    assert r["episodes"] == 3 and r["ms_per_plan_median"] > 0
    assert len(r["final_distance_px"]) == 3  # per episode, in the protocol's order
    assert np.mean(r["final_distance_px"]) == pytest.approx(r["mean_final_distance_px"], abs=0.01)
    assert r["success_rate"] == pytest.approx(np.mean(np.array(r["final_distance_px"]) < 4.5))
    json.dumps(r)


def test_goal_of_the_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"goal states should have shape \(B, 8\), got \(3, 5\)"):
        actor(FAST).cost(torch.zeros(3, 5))


def test_model_for_another_action_space_is_refused():
    with pytest.raises(AgentError, match="3-D actions"):
        check_compatible(tiny_model(action_dim=3), "amia/TwoRooms-v0")
    with pytest.raises(AgentError, match="observations"):
        check_compatible(tiny_model(obs_shape=(3, 64, 64)), "amia/TwoRooms-v0")


def test_unknown_planner_and_env_are_clear_errors():
    with pytest.raises(FieldError, match="planner='astar': expected one of gd, cem, mppi, hybrid"):
        EvalConfig(planner="astar")
    with pytest.raises(ValueError, match="unknown env id"):
        run_episodes(tiny_model(), "amia/Nowhere-v0", FAST, progress=False)


def test_eval_cli_on_a_directory_without_a_model(tmp_path, capsys):
    from amia.cli import main

    assert main(["eval", "--run", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({"env_id": "amia/TwoRooms-v0", "data": None, "train": {}}))
    assert main(["eval", "--run", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_executed_actions_stay_in_the_box():
    """Plans from every planner are executed as they are: they must respect the world's action bound."""
    from amia.cost.terms import GoalDistance
    from amia.planning.planners import plan

    model = tiny_model().requires_grad_(False)
    s0 = torch.randn(4, 8)
    for name in ("gd", "cem", "mppi", "hybrid"):
        cfg = PlannerConfig(horizon=5, iterations=3, samples=16, elites=4, restarts=3, init_std=3.0)
        p = plan(name, model.predictor.rollout, GoalDistance(torch.randn(4, 8) * 10), s0, torch.zeros(4, 5, 2),
                 2.45, cfg, generator=torch.Generator().manual_seed(0))
        assert p.actions.abs().max() <= 2.45 + 1e-6


def test_gif_and_plot_are_written(tmp_path):
    import imageio.v2 as imageio

    from amia.eval.pictures import planner_plot, write_gif

    gif = tmp_path / "plan.gif"
    assert not write_gif(gif, actor(FAST), "amia/TwoRooms-v0", FAST, None, episodes=2)  # no data: no plans drawn
    frames = imageio.mimread(str(gif))
    assert len(frames) == FAST.max_steps
    assert frames[0].shape[:2] == (66 * 4, 2 * 66 * 4)  # two 64x64 tiles with a 1 px frame, scaled 4x
    png = tmp_path / "planners.png"
    planner_plot(png, [evaluate(tiny_model(), "amia/TwoRooms-v0", FAST, progress=False)])
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"



def test_evaluate_reports_the_surprise_watch_and_counts_its_predictor_call():
    from amia.agent.surprise import SurpriseConfig

    cfg = EvalConfig(**{**FAST.__dict__, "timing_calls": 0, "surprise": SurpriseConfig(enabled=False)})
    plain = evaluate(tiny_model(), "amia/TwoRooms-v0", cfg, progress=False)
    watched = evaluate(tiny_model(), "amia/TwoRooms-v0",
                       EvalConfig(**{**cfg.__dict__, "surprise": SurpriseConfig(enabled=True)}), progress=False)
    assert "surprises" not in plain and watched["predictor_calls_per_step"] == plain["predictor_calls_per_step"] + 1
    default = EvalConfig(**{**cfg.__dict__, "surprise": SurpriseConfig()})
    assert evaluate(tiny_model(), "amia/TwoRooms-v0", default, progress=False)["surprise_watch"] is False
    # on by default only for the reach task when the actor acts from a policy (Mode-1 or policy-started Mode-2)
    assert [EvalConfig(**{**default.__dict__, "task": task}).watches_surprise(from_policy)
            for task in ("reach", "reach_avoid", "keep_away") for from_policy in (True, False)] == [
        True, False, False, False, False, False]
    explored = round(watched["explored_step_fraction"] * cfg.episodes * cfg.max_steps)
    assert watched["surprises"] <= explored <= watched["surprises"] * SurpriseConfig().steps  # 1..steps per surprise


def test_boredom_is_reported_and_refused_where_it_does_not_apply():
    from amia.cost.boredom import BoredomConfig

    cfg = EvalConfig(**{**FAST.__dict__, "planner": "mppi", "boredom": BoredomConfig(weight=2.0, memory=4)})
    r = evaluate(tiny_model(), "amia/TwoRooms-v0", cfg, progress=False)
    assert r["config"]["boredom"] == {**FAST.boredom.__dict__, "weight": 2.0, "memory": 4}
    assert len(r["final_distance_px"]) == 3
    assert evaluate(tiny_model(), "amia/TwoRooms-v0", FAST, progress=False)["config"]["boredom"]["weight"] == 0
    with pytest.raises(AgentError, match="does not take boredom.weight"):
        EvalConfig(**{**cfg.__dict__, "hierarchical": True})
