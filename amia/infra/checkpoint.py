"""Safe artefacts: weights (and optimizer state) in safetensors plus JSON; loading never unpickles; writes are atomic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from amia.infra.validate import refuse_links

FORMAT = "amia.checkpoint"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, made for another architecture, or holding non-finite weights."""


def _replace(tmp: Path, path: Path, write) -> None:
    """``write(tmp)``, then move ``tmp`` over ``path``; neither may be a link, and a failed write (a full disk)
    leaves no temporary file and ``path`` as it was."""
    refuse_links(path, tmp)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (never through a symbolic link)."""
    path = Path(path)

    def write(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)

    _replace(path.with_name(path.name + ".tmp"), path, write)


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def meta_field(meta: dict, key: str, path: str | Path):
    """``meta[key]``; ``CheckpointError`` naming the file and the field if the checkpoint's metadata lacks it."""
    if key not in meta:
        raise CheckpointError(f"{path}: the checkpoint's metadata lacks the field {key!r} (expected by this version "
                              f"of amia; has {', '.join(sorted(meta)) or 'none'})")
    return meta[key]


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    meta: dict) -> None:
    """Write model weights, optimizer state and ``meta`` (JSON-able) into one safetensors file, atomically."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    groups = []
    if optimizer is not None:
        sd = optimizer.state_dict()
        for idx, st in sd["state"].items():
            for name, v in st.items():
                tensors[f"optim/{idx}/{name}"] = torch.as_tensor(v).detach().cpu().contiguous()
        groups = sd["param_groups"]
    header = {"format": FORMAT, "meta": json.dumps(meta), "param_groups": json.dumps(groups)}
    bad = non_finite(tensors)
    path = Path(path)
    if bad:
        raise CheckpointError(f"{path}: not saved: {', '.join(bad[:4])} hold non-finite values (NaN or inf); the "
                              "previous checkpoint, if any, is kept")
    _replace(path.with_name(path.name + ".tmp"), path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict, list]:
    """Tensors, ``meta`` and optimizer param groups of a checkpoint; ``CheckpointError`` if unreadable."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no checkpoint there")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint: {e}") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an amia checkpoint (format {header.get('format')!r})")
    try:
        meta, groups = json.loads(header["meta"]), json.loads(header.get("param_groups", "[]"))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: the checkpoint's metadata is missing or not JSON ({e})") from None
    if not isinstance(meta, dict) or not isinstance(groups, list):
        raise CheckpointError(f"{path}: the checkpoint's metadata should be a JSON object, got {type(meta).__name__}")
    bad = non_finite(tensors)
    if bad:
        raise CheckpointError(f"{path}: refused: {len(bad)} tensor(s) hold NaN or inf ({', '.join(bad[:4])}); "
                              "the weights are unusable (retrain, or resume from an earlier copy)")
    return tensors, meta, groups


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: str | Path = "checkpoint") -> None:
    """Load ``model/*`` tensors into ``model``; any missing, extra or mis-shaped tensor is a ``CheckpointError``."""
    own = model.state_dict()
    saved = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    problems = [f"missing {k}" for k in own if k not in saved]
    problems += [f"unexpected {k}" for k in saved if k not in own]
    problems += [f"{k}: checkpoint has shape {tuple(saved[k].shape)}, model expects {tuple(v.shape)}"
                 for k, v in own.items() if k in saved and saved[k].shape != v.shape]
    if problems:
        raise CheckpointError(f"{path}: checkpoint is for another architecture: " + "; ".join(problems[:6])
                              + (f" (and {len(problems) - 6} more)" if len(problems) > 6 else ""))
    model.load_state_dict(saved)


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, idx, name = k.split("/", 2)
            state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": groups})
