"""Where a number came from: git revision, machine, library versions (for metrics and benchmark JSON)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path


def git_revision() -> str:
    """Short git revision of the amia checkout (``+dirty`` with uncommitted changes), or ``unknown``."""
    if os.environ.get("AMIA_GIT_REV"):  # for copies of the tree without .git (e.g. a remote GPU machine)
        return os.environ["AMIA_GIT_REV"]
    root = Path(__file__).resolve().parent.parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("+dirty" if dirty else "")) if rev else "unknown"


def machine() -> dict:
    import torch

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
