"""Dataclass configs: build from dicts / YAML with strict key checks, ``key=value`` overrides, and back to dicts."""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from amia.infra.validate import ConfigError, FieldError

T = TypeVar("T")


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown(key: str, known, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown config key {where}{key!r}{hint} (known: {', '.join(sorted(known))})")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp):  # int | None and the like
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(value, inner[0], where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config {where!r} should be a mapping, got {value!r}")
        return from_dict(tp, value, prefix=where + ".")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config {where!r} should be a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        return tuple(_coerce(v, inner or args[i], where) for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config {where!r} should be true or false, got {value!r}")
    if tp is float and isinstance(value, str):
        try:  # PyYAML (YAML 1.1) reads exponent floats without a dot, like 1e-3, as strings
            value = float(value)
        except ValueError:
            pass
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (tp is int and not float(value).is_integer()):
            raise ConfigError(f"config {where!r} should be {tp.__name__}, got {value!r}")
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config {where!r} should be a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) dict; unknown keys and wrong types raise ``ConfigError``."""
    types = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in types:
            raise _unknown(key, types, prefix)
        kwargs[key] = _coerce(value, types[key], prefix + key)
    try:
        return cls(**kwargs)
    except FieldError as e:  # a nested config's field, named from the top: planning.horizon
        raise e.prefixed(prefix) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples become lists), JSON- and YAML-safe."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def apply_overrides(cfg: T, overrides: list[str], prefix: str = "") -> T:
    """Apply ``a.b=value`` overrides (values parsed as YAML: ``3``, ``0.1``, ``true``, ``[32, 64]``); errors name
    the key with ``prefix`` before it (``level2.``), as the user wrote it."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} should look like key=value")
        key, raw = item.split("=", 1)
        node, parts = data, key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                known = list(node) if isinstance(node, dict) else []
                raise _unknown(part, known, prefix + ".".join(parts[:i]) + ("." if i else ""))
            if i == len(parts) - 1:
                node[part] = _parse_value(key, raw)
            else:
                node = node[part]
    return from_dict(type(cfg), data, prefix)


def _parse_value(key: str, raw: str) -> Any:
    """An override's value, read as YAML."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {key}={raw}: not a YAML value ({str(e).splitlines()[0]})") from None


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Read a YAML preset into ``cls`` (keys it leaves out keep their defaults)."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file should hold a mapping, got {type(data).__name__}")
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
