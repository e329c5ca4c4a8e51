"""Checks at the boundaries: one error type for a bad setting, naming the field, its value and what was expected.

Every config dataclass checks its fields in ``__post_init__`` with these helpers, so a bad value is refused when
the config is built, before anything is written. ``FieldError`` carries the field's name; ``amia.infra.config``
prefixes it with the path of a nested config (``planning.horizon``), and the command line prints it as one line
``amia: error: planning.horizon=0: expected an integer >= 1``.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config key or value that the dataclass does not accept."""


class FieldError(ConfigError):
    """One field's value is out of range: ``field=value: expected ...``."""

    def __init__(self, field: str, value: Any, expected: str):
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"{field}={show(value)}: expected {expected}")

    def prefixed(self, prefix: str) -> FieldError:
        """The same error with ``prefix`` (``planning.``) before the field's name."""
        return FieldError(prefix + self.field, self.value, self.expected)


def show(value: Any) -> str:
    """A value as it would be written in a ``key=value`` override (strings quoted)."""
    return repr(value) if isinstance(value, str) else str(value)


def check(ok: bool, field: str, value: Any, expected: str) -> None:
    """Raise ``FieldError(field, value, expected)`` unless ``ok``."""
    if not ok:
        raise FieldError(field, value, expected)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def at_least(cfg: Any, low: float, *names: str) -> None:
    """Each field in ``names`` is a finite number ``>= low`` (ints: ``low`` 1 for counts, 0 for "0 = off")."""
    for name in names:
        value = getattr(cfg, name)
        kind = "an integer" if isinstance(value, int) else "a number"
        check(_number(value) and value >= low, name, value, f"{kind} >= {show(low)}")


def positive(cfg: Any, *names: str) -> None:
    """Each field in ``names`` is a finite number ``> 0``."""
    for name in names:
        value = getattr(cfg, name)
        check(_number(value) and value > 0, name, value, "a number > 0")


def within(cfg: Any, name: str, low: float, high: float, open_low: bool = False, open_high: bool = False) -> None:
    """Field ``name`` lies in the interval from ``low`` to ``high`` (closed unless ``open_low`` / ``open_high``)."""
    value = getattr(cfg, name)
    ok = _number(value) and (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    check(ok, name, value, f"a number in {interval}")


def one_of(cfg: Any, name: str, choices) -> None:
    """Field ``name`` is one of ``choices``."""
    value = getattr(cfg, name)
    check(value in choices, name, value, "one of " + ", ".join(map(str, choices)))


DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def check_device(device: str, field: str = "--device") -> str:
    """``device`` if it names a device that this machine has: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    import torch

    check(isinstance(device, str) and bool(DEVICE.match(device)), field, device, "cpu, cuda, cuda:N or mps")
    if device.startswith("cuda"):
        check(torch.cuda.is_available(), field, device, "a device this machine has (torch sees no CUDA GPU; "
              "this PyTorch build or machine has none): use cpu")
        index = int(device.split(":")[1]) if ":" in device else 0
        count = torch.cuda.device_count()
        check(index < count, field, device, f"a CUDA device index below {count}")
    if device == "mps":
        check(torch.backends.mps.is_available(), field, device, "a device this machine has (no MPS here): use cpu")
    return device


class LinkError(ValueError):
    """An output path that is a symbolic link: writing through it could change a file outside the run."""


def refuse_links(*paths: str | os.PathLike) -> None:
    """Raise ``LinkError`` if any of ``paths`` is a symbolic link (amia never writes through one)."""
    for p in paths:
        if Path(p).is_symlink():
            raise LinkError(f"{p}: is a symbolic link (to {os.readlink(p)}); amia does not write through links, "
                            "which could change files outside the run: remove the link")


def check_output_file(path: str | os.PathLike, option: str, make_parents: bool = False) -> Path:
    """``path`` can be written as a results file: not a directory nor a link, in a writable existing folder (or,
    with ``make_parents``, one that can be made). Checked before long work starts, so that its results are not lost
    at the end."""
    p = Path(path)
    check(not p.is_symlink(), option, str(p), "a regular file, not a symbolic link")
    check(not p.is_dir(), option, str(p), "a file name, not a directory")
    parent = p.absolute().parent
    while make_parents and not parent.exists() and parent != parent.parent:
        parent = parent.parent
    check(parent.is_dir(), option, str(p), f"a file in an existing folder ({parent} is not one)")
    writable = os.access(p, os.W_OK) if p.exists() else os.access(parent, os.W_OK)
    check(writable, option, str(p), "a file that this user may write")
    return p


__all__ = ["ConfigError", "FieldError", "LinkError", "at_least", "check", "check_device", "check_output_file",
           "one_of", "positive", "refuse_links", "show", "within"]
