"""Safe artefacts: weights (and optimizer state) in safetensors plus JSON; loading never unpickles; writes are atomic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "amia.checkpoint"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or made for another architecture."""


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=header)
    os.replace(tmp, path)


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
    return tensors, json.loads(header["meta"]), json.loads(header["param_groups"])


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
