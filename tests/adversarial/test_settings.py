"""Every config field out of range is refused when the config is built, as ``FieldError`` naming ``field=value``
and what was expected; nested fields are named by their path; values on the boundary are accepted."""

from __future__ import annotations

import math

import pytest

from amia.agent.hierarchical import HierarchyConfig
from amia.agent.surprise import SurpriseConfig
from amia.cost.boredom import BoredomConfig
from amia.data.collect import CollectConfig
from amia.eval.protocol import EvalConfig
from amia.infra.config import apply_overrides, from_dict
from amia.infra.validate import FieldError
from amia.models.encoder import EncoderConfig
from amia.models.jepa import LossConfig
from amia.models.level2 import HJEPAConfig
from amia.models.policy import PolicyConfig
from amia.models.predictor import PredictorConfig
from amia.planning.planners import PlannerConfig
from amia.planning.uncertainty import UncertaintyConfig
from amia.training.critics import Level2CriticConfig
from amia.training.distill import CriticConfig, DistillConfig
from amia.training.policy import AmortiseConfig
from amia.training.refine import RefineConfig
from amia.training.world_model import TrainConfig

NAN, INF = math.nan, math.inf

BAD = [  # (config, field, bad value, words the message must hold after "field=value: expected")
    (TrainConfig, "steps", -5, ">= 1"), (TrainConfig, "steps", 0, ">= 1"), (TrainConfig, "batch_size", 0, ">= 2"),
    (TrainConfig, "batch_size", 1, ">= 2"), (TrainConfig, "window", 0, ">= 1"), (TrainConfig, "window", -3, ">= 1"),
    (TrainConfig, "checkpoint_every", 0, ">= 1"), (TrainConfig, "log_every", 0, ">= 1"),
    (TrainConfig, "threads", -2, ">= 0"), (TrainConfig, "val_fraction", -1.0, "(0, 1)"),
    (TrainConfig, "val_fraction", 0.0, "(0, 1)"), (TrainConfig, "val_fraction", 1.0, "(0, 1)"),
    (TrainConfig, "val_fraction", 1.5, "(0, 1)"), (TrainConfig, "val_fraction", NAN, "(0, 1)"),
    (TrainConfig, "lr", 0.0, "> 0"), (TrainConfig, "lr", -1e-3, "> 0"), (TrainConfig, "lr", NAN, "> 0"),
    (TrainConfig, "lr", INF, "> 0"), (TrainConfig, "warmup", -1, ">= 0"), (TrainConfig, "grad_clip", -1.0, ">= 0"),
    (TrainConfig, "weight_decay", -0.1, ">= 0"), (TrainConfig, "val_every", -1, ">= 0"),
    (TrainConfig, "chunk_frames", 0, ">= 1"), (TrainConfig, "diag_windows", 0, ">= 1"), (TrainConfig, "seed", -1, ">= 0"),
    (CollectConfig, "episodes", 0, ">= 1"), (CollectConfig, "steps", 0, ">= 1"), (CollectConfig, "batch", 0, ">= 1"),
    (CollectConfig, "policy", "bogus", "one of doors, drift, uniform"), (CollectConfig, "kappa", 0.0, "> 0"),
    (CollectConfig, "door_fraction", 2.0, "[0, 1]"), (CollectConfig, "seed", -7, ">= 0"),
    (EncoderConfig, "dim", 0, ">= 1"), (EncoderConfig, "downsample", 0, ">= 1"),
    (EncoderConfig, "channels", (8, 0), "integers >= 1"), (PredictorConfig, "hidden", 0, ">= 1"),
    (PredictorConfig, "layers", 0, ">= 1"), (PredictorConfig, "latent_dim", -1, ">= 0"),
    (PredictorConfig, "latent", "bogus", "one of none, discrete"), (PredictorConfig, "latent_dim", 3, "0 with latent=none"),
    (PredictorConfig, "latent_weight", 0.0, "> 0"),
    (LossConfig, "regularizer", "bogus", "one of vicreg, sigreg, none"), (LossConfig, "var", -1.0, ">= 0"),
    (LossConfig, "std_target", 0.0, "> 0"), (LossConfig, "sigreg_directions", 0, ">= 1"),
    (PlannerConfig, "horizon", 0, ">= 1"), (PlannerConfig, "iterations", 0, ">= 1"), (PlannerConfig, "samples", 0, ">= 1"),
    (PlannerConfig, "elites", 0, ">= 1"), (PlannerConfig, "restarts", 0, ">= 1"), (PlannerConfig, "knot_every", 0, ">= 1"),
    (PlannerConfig, "warm_iterations", -1, ">= 0"), (PlannerConfig, "temperature", 0.0, "> 0"),
    (PlannerConfig, "lr", 0.0, "> 0"), (PlannerConfig, "explore_fraction", 1.5, "[0, 1]"),
    (PlannerConfig, "init_std", -1.0, "> 0"), (PlannerConfig, "populations", 0, ">= 1"),
    (EvalConfig, "episodes", 0, ">= 1"), (EvalConfig, "max_steps", 0, ">= 1 (or null"),
    (EvalConfig, "max_steps", -4, ">= 1 (or null"), (EvalConfig, "replan_every", 0, ">= 1"),
    (EvalConfig, "planner", "astar", "one of gd, cem, mppi, hybrid"), (EvalConfig, "task", "fly", "one of reach"),
    (EvalConfig, "mode", 3, "one of 1, 2"), (EvalConfig, "timing_calls", -1, ">= 0"),
    (EvalConfig, "critic_weight", -1.0, ">= 0"), (EvalConfig, "seed", -1, ">= 0"),
    (EvalConfig, "forbid_weight", -2.0, ">= 0 (or null"), (EvalConfig, "final_weight", -1.0, ">= 0"),
    (EvalConfig, "region", (30.0, 0.0, 10.0, 5.0), "x0 < x1"), (EvalConfig, "task", "flee", "evade"),
    (UncertaintyConfig, "futures", -1, ">= 0"), (UncertaintyConfig, "risk", "worst", "one of expected, mean_std"),
    (UncertaintyConfig, "cvar_fraction", 0.0, "(0, 1]"), (UncertaintyConfig, "std_weight", 0.0, "> 0"),
    (UncertaintyConfig, "candidates", 0, ">= 1"),
    (HJEPAConfig, "stride", 0, ">= 1"), (HJEPAConfig, "pool", "max", "one of first, mean"),
    (HJEPAConfig, "batch_size", 1, ">= 2"), (HJEPAConfig, "report_steps", 13, "multiple of stride"),
    (HJEPAConfig, "log_every", 0, ">= 1"), (HJEPAConfig, "checkpoint_every", 0, ">= 1"),
    (HJEPAConfig, "threads", -1, ">= 0"), (HJEPAConfig, "lr", 0.0, "> 0"),
    (Level2CriticConfig, "gamma", 1.0, "(0, 1)"), (Level2CriticConfig, "expectile", 0.0, "(0, 1)"),
    (Level2CriticConfig, "steps", 0, ">= 1"), (Level2CriticConfig, "checkpoint_every", 0, ">= 1"),
    (Level2CriticConfig, "log_every", 0, ">= 1"), (Level2CriticConfig, "goal_future", 0.9, "goal_self + goal_future"),
    (Level2CriticConfig, "target_tau", 0.0, "(0, 1]"), (DistillConfig, "rounds", 0, ">= 1"),
    (DistillConfig, "seed", 0, ">= 1 (seed 0's start/goal pairs"), (DistillConfig, "planner", "x", "one of gd"),
    (DistillConfig, "label_span", 0, ">= 1"), (CriticConfig, "hidden", 0, ">= 1"),
    (CriticConfig, "stride", 0, ">= 1"), (RefineConfig, "seed", 0, ">= 1"), (RefineConfig, "own_fraction", 2.0, "[0, 1]"),
    (RefineConfig, "fit_steps", 0, ">= 1"), (RefineConfig, "lr", -1.0, "> 0"), (SurpriseConfig, "ratio", 0.0, "(0, 1]"),
    (SurpriseConfig, "explore", "x", "one of random, back_off"), (SurpriseConfig, "steps", 0, ">= 1"),
    (BoredomConfig, "width", 0.0, "> 0"), (BoredomConfig, "memory", 0, ">= 1"), (BoredomConfig, "weight", -1.0, ">= 0"),
    (HierarchyConfig, "subgoal", 0, ">= 1"), (HierarchyConfig, "planner2", "x", "one of , gd"),
    (HierarchyConfig, "switch_distance", -0.1, ">= 0"), (AmortiseConfig, "horizon", 0, ">= 1"),
    (AmortiseConfig, "hindsight_goals", -0.5, "[0, 1]"), (PolicyConfig, "hidden", 0, ">= 1"),
    (PolicyConfig, "lr", 0.0, "> 0"),
]


@pytest.mark.parametrize("cls, field, value, expected", BAD,
                         ids=[f"{c.__name__}.{f}={v}" for c, f, v, _ in BAD])
def test_a_field_out_of_range_is_refused_when_built(cls, field, value, expected):
    with pytest.raises(FieldError) as e:
        cls(**{field: value})
    msg = str(e.value)
    assert e.value.field == field and msg.startswith(f"{field}=") and ": expected " in msg, msg
    assert expected in msg, msg
    assert (repr(value) if isinstance(value, str) else str(list(value) if isinstance(value, tuple) else value)) in msg


def test_a_plan_shorter_than_the_replanning_interval_is_refused():
    from amia.agent.load import AgentConfig

    for build in (lambda: AgentConfig(replan_every=40), lambda: DistillConfig(replan_every=40)):
        with pytest.raises(FieldError, match=r"^planning.horizon=32: expected an integer >= replan_every \(40\)"):
            build()


NESTED = [  # (config, override, the name the message must start with)
    (TrainConfig, "jepa.encoder.dim=0", "jepa.encoder.dim=0: expected"),
    (TrainConfig, "jepa.loss.regularizer=vic", "jepa.loss.regularizer='vic': expected"),
    (TrainConfig, "collect.episodes=0", "collect.episodes=0: expected"),
    (TrainConfig, "jepa.predictor.layers=-1", "jepa.predictor.layers=-1: expected"),
    (EvalConfig, "planning.horizon=0", "planning.horizon=0: expected"),
    (EvalConfig, "hierarchy.level1.horizon=0", "hierarchy.level1.horizon=0: expected"),
    (EvalConfig, "surprise.ratio=2", "surprise.ratio=2.0: expected"),
    (EvalConfig, "boredom.memory=0", "boredom.memory=0: expected"),
    (DistillConfig, "critic.stride=0", "critic.stride=0: expected"),
    (DistillConfig, "amortise.horizon=0", "amortise.horizon=0: expected"),
    (DistillConfig, "policy.batch_size=0", "policy.batch_size=0: expected"),
    (RefineConfig, "act.replan_every=0", "act.replan_every=0: expected"),
]


@pytest.mark.parametrize("cls, override, start", NESTED, ids=[o for _, o, _ in NESTED])
def test_a_nested_field_is_named_by_its_path(cls, override, start):
    with pytest.raises(FieldError) as e:
        apply_overrides(cls(), [override])
    assert str(e.value).startswith(start), str(e.value)


def test_a_nested_field_from_a_dict_is_named_by_its_path():
    with pytest.raises(FieldError, match=r"^jepa\.encoder\.downsample=0: expected an integer >= 1$"):
        from_dict(TrainConfig, {"jepa": {"encoder": {"downsample": 0}}})


def test_level2_overrides_are_named_as_written():
    with pytest.raises(FieldError, match=r"^level2\.stride=0: expected"):
        apply_overrides(HJEPAConfig(), ["stride=0"], "level2.")


GOOD = [  # values on the boundary, or documented special values, are accepted
    (TrainConfig, {"threads": 0}), (TrainConfig, {"val_fraction": 0.5, "batch_size": 2, "steps": 1, "window": 1}),
    (TrainConfig, {"val_every": 0, "warmup": 0, "grad_clip": 0.0}), (EvalConfig, {"max_steps": None, "timing_calls": 0}),
    (EvalConfig, {"forbid_weight": 0.0, "episodes": 1, "max_steps": 1}), (CollectConfig, {"door_fraction": 0.0}),
    (PlannerConfig, {"warm_iterations": 0, "refine": 0, "explore_fraction": 1.0}), (HJEPAConfig, {"report_steps": 0}),
    (RefineConfig, {"own_fraction": 0.0, "seed": 1}), (SurpriseConfig, {"ratio": 1.0, "every": 0}),
]


@pytest.mark.parametrize("cls, fields", GOOD, ids=[f"{c.__name__}:{sorted(f)}" for c, f in GOOD])
def test_boundary_values_are_accepted(cls, fields):
    cfg = cls(**fields)
    assert all(getattr(cfg, k) == v for k, v in fields.items())
