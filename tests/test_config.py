"""Dataclass configs: strict dict / YAML loading, ``key=value`` overrides, and the round trip back to dicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from amia.data.collect import CollectConfig
from amia.infra.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from amia.training.world_model import TrainConfig, default_config


def test_nested_override():
    base = TrainConfig()
    before = to_dict(base)
    cfg = apply_overrides(base, ["jepa.loss.cov=4", "steps=500", "jepa.loss.regularizer=sigreg"])
    assert cfg.jepa.loss.cov == 4.0 and isinstance(cfg.jepa.loss.cov, float)
    assert cfg.steps == 500 and isinstance(cfg.steps, int)
    assert cfg.jepa.loss.regularizer == "sigreg"
    # the input config is not modified, and everything else keeps its value
    assert to_dict(base) == before
    after = to_dict(cfg)
    after["jepa"]["loss"].update(cov=before["jepa"]["loss"]["cov"], regularizer=before["jepa"]["loss"]["regularizer"])
    after["steps"] = before["steps"]
    assert after == before
    # later overrides win
    assert apply_overrides(TrainConfig(), ["steps=5", "steps=7"]).steps == 7


def test_float_values():
    cfg = apply_overrides(TrainConfig(), ["lr=0.0003", "val_fraction=0.25", "grad_clip=2"])
    assert cfg.lr == pytest.approx(3e-4) and cfg.val_fraction == 0.25
    assert cfg.grad_clip == 2.0 and isinstance(cfg.grad_clip, float)
    # PyYAML reads exponent notation without a dot (1e-3) as a string; a float field still takes it
    cfg = apply_overrides(TrainConfig(), ["lr=1e-3", "weight_decay=5e-2"])
    assert cfg.lr == 1e-3 and cfg.weight_decay == 0.05 and isinstance(cfg.lr, float)


def test_unknown_nested_key_suggests():
    with pytest.raises(ConfigError) as e:
        apply_overrides(TrainConfig(), ["jepa.loss.covv=1"])
    msg = str(e.value)
    assert "covv" in msg and "did you mean 'cov'" in msg and "jepa.loss." in msg
    with pytest.raises(ConfigError, match="did you mean 'encoder'"):
        apply_overrides(TrainConfig(), ["jepa.encodr.dim=3"])


def test_unknown_top_level_key():
    with pytest.raises(ConfigError) as e:
        apply_overrides(TrainConfig(), ["stepz=3"])
    assert "stepz" in str(e.value) and "did you mean 'steps'" in str(e.value)
    with pytest.raises(ConfigError, match="unknown config key 'zzz'"):
        apply_overrides(TrainConfig(), ["zzz=3"])
    with pytest.raises(ConfigError, match="'batch_size'"):
        from_dict(TrainConfig, {"batch_sise": 4})


def test_key_below_a_leaf_or_without_value():
    with pytest.raises(ConfigError, match="steps"):
        apply_overrides(TrainConfig(), ["steps.x=3"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(TrainConfig(), ["steps"])
    with pytest.raises(ConfigError, match="mapping"):
        apply_overrides(TrainConfig(), ["jepa=3"])


@pytest.mark.parametrize("item, words", [
    ("steps=abc", ["'steps'", "int", "abc"]),
    ("steps=1.5", ["'steps'", "int", "1.5"]),
    ("steps=true", ["'steps'", "int"]),
    ("lr=fast", ["'lr'", "float", "fast"]),
    ("jepa.loss.regularizer=3", ["'jepa.loss.regularizer'", "string"]),
    ("jepa.encoder.channels=8", ["'jepa.encoder.channels'", "list"]),
    ("jepa.encoder.channels=[8, 1.5]", ["'jepa.encoder.channels'", "int"]),
])
def test_wrong_type(item, words):
    with pytest.raises(ConfigError) as e:
        apply_overrides(TrainConfig(), [item])
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_integral_float_is_an_int():
    cfg = apply_overrides(TrainConfig(), ["steps=2.0"])
    assert cfg.steps == 2 and isinstance(cfg.steps, int)


def test_tuple_field():
    cfg = apply_overrides(TrainConfig(), ["jepa.encoder.channels=[8,16]"])
    assert cfg.jepa.encoder.channels == (8, 16) and isinstance(cfg.jepa.encoder.channels, tuple)
    assert all(isinstance(c, int) for c in cfg.jepa.encoder.channels)
    assert to_dict(cfg)["jepa"]["encoder"]["channels"] == [8, 16]
    assert from_dict(TrainConfig, {"jepa": {"encoder": {"channels": []}}}).jepa.encoder.channels == ()


def test_round_trip():
    cfg = apply_overrides(TrainConfig(), ["jepa.loss.cov=4", "jepa.encoder.channels=[8,16]", "collect.policy=uniform",
                                          "collect.episodes=10", "lr=2e-4", "seed=9"])
    d = to_dict(cfg)
    assert json.loads(json.dumps(d)) == d  # plain JSON
    back = from_dict(TrainConfig, d)
    assert back == cfg
    assert to_dict(back) == d
    assert isinstance(back.collect, CollectConfig) and back.collect.episodes == 10
    assert from_dict(TrainConfig, {}) == TrainConfig()


def test_load_yaml(tmp_path):
    cfg = apply_overrides(TrainConfig(), ["jepa.loss.cov=4", "jepa.encoder.channels=[8,16]", "weight_decay=1e-5"])
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert load_yaml(TrainConfig, path) == cfg
    # keys left out keep their defaults; exponent floats without a dot are read as floats
    path.write_text("steps: 12\njepa:\n  loss:\n    var: 2\nlr: 3e-4\n")
    small = load_yaml(TrainConfig, path)
    assert small.steps == 12 and small.jepa.loss.var == 2.0 and small.lr == 3e-4
    assert small.batch_size == TrainConfig().batch_size
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml(TrainConfig, empty) == TrainConfig()


def test_load_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("steps: 10\njepa:\n  loss:\n    covv: 3\n")
    with pytest.raises(ConfigError) as e:
        load_yaml(TrainConfig, path)
    assert str(path) in str(e.value) and "covv" in str(e.value) and "did you mean 'cov'" in str(e.value)
    path.write_text("steps: many\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'steps'"):
        load_yaml(TrainConfig, path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*mapping"):
        load_yaml(TrainConfig, path)


def test_world_presets_give_wall_v0_its_strong_inverse_dynamics_term():
    from amia.training.world_model import WORLD_PRESETS, TrainConfig, default_config

    assert default_config("amia/TwoRooms-v0") == TrainConfig()
    wall = default_config("amia/Wall-v0")
    assert wall.jepa.loss.idm == 10.0
    assert wall.jepa.loss.idm != TrainConfig().jepa.loss.idm
    assert set(WORLD_PRESETS) >= {"amia/TwoRooms-v0", "amia/Wall-v0"}


def test_the_presets_in_configs_are_the_world_defaults_and_wall_large_only_scales_them():
    """configs/ writes out amia.training.world_model.WORLD_PRESETS; wall_large.yaml changes only the state size and the budget."""
    root = Path(__file__).resolve().parents[1] / "configs"
    assert load_yaml(TrainConfig, root / "tworooms.yaml") == default_config("amia/TwoRooms-v0")
    wall = default_config("amia/Wall-v0")
    assert load_yaml(TrainConfig, root / "wall.yaml") == wall
    large = to_dict(load_yaml(TrainConfig, root / "wall_large.yaml"))
    scaled = to_dict(apply_overrides(wall, ["steps=15000", "collect.episodes=4000", "jepa.encoder.dim=128"]))
    assert large == scaled
    assert large != to_dict(wall)
    assert load_yaml(TrainConfig, root / "maze.yaml") == default_config("amia/Maze-v0")


def test_the_headline_presets_hold_the_settings_behind_each_result():
    """Each evaluation, refinement and distillation preset loads into its dataclass and says what the README's
    table says it does; every YAML file in configs/ is one of the kinds below."""
    from amia.eval.protocol import EvalConfig
    from amia.training.refine import RefineConfig

    root = Path(__file__).resolve().parents[1] / "configs"
    wall = load_yaml(EvalConfig, root / "wall_eval.yaml")
    assert (wall.planner, wall.surprise.enabled, wall.surprise.explore) == ("mppi", True, "back_off")
    assert (wall.boredom.weight, wall.boredom.width, wall.boredom.memory) == (2.0, 0.2, 160)
    assert wall.episodes == 200 and wall.seed == 0  # the standard protocol otherwise
    maze = load_yaml(EvalConfig, root / "maze_eval.yaml")
    assert maze.hierarchical and maze.hierarchy == EvalConfig().hierarchy  # the hierarchy's defaults, written out
    assert load_yaml(EvalConfig, root / "tworooms_mode1_eval.yaml") == EvalConfig(mode=1)
    refine = load_yaml(RefineConfig, root / "wall_refine.yaml")
    assert refine.rounds == 8 and refine.act.planner == "mppi" and refine.act.surprise.explore == "back_off"
    kinds = {"_eval.yaml": EvalConfig, "_refine.yaml": RefineConfig}
    for path in root.glob("*.yaml"):
        cls = next((c for suffix, c in kinds.items() if path.name.endswith(suffix)), TrainConfig)
        load_yaml(cls, path)  # raises on any key the dataclass does not have
