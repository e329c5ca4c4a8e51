"""The README's Python quick start runs as written (in a scratch directory), in at most 15 lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def quick_start() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python block"
    return blocks[0]


def test_the_quick_start_is_short():
    code = quick_start()
    assert len(code.strip().splitlines()) <= 15 and "import amia" in code


def test_the_quick_start_runs_as_written(tmp_path):
    done = subprocess.run([sys.executable, "-c", quick_start()], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "TQDM_DISABLE": "1",
                                            "PYTHONPATH": str(README.parent)})  # this checkout, not another install
    assert done.returncode == 0, done.stderr[-2000:]
    rate = float(done.stdout.strip().splitlines()[-1])
    assert rate * 4 == round(rate * 4)  # a success rate over 4 episodes
    metrics = json.loads((tmp_path / "runs" / "quickstart" / "metrics.json").read_text())
    assert metrics["steps"] == 30 and metrics["env_id"] == "amia/TwoRooms-v0"
