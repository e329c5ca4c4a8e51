"""Shared by the agent benchmarks (``agent.py``, ``replan.py``): one evaluation row, and the JSON written after it."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path


def eval_row(run: str, base, name: str, device: str = "cpu", fields: tuple[str, ...] = (), **changes) -> dict:
    """``amia.eval.protocol.evaluate`` on ``run`` with ``base`` (an ``EvalConfig``) changed by ``changes``
    (``planning={...}`` for the planner's settings), printed as one JSON line; ``fields`` of ``cfg.planning`` are
    copied into the row, with its ``name`` and wall time."""
    from amia.eval.protocol import evaluate

    planning = changes.pop("planning", {})
    cfg = dataclasses.replace(base, planning=dataclasses.replace(base.planning, **planning), **changes)
    t0 = time.time()
    r = evaluate(run, cfg, device, progress=False)
    r.update(name=name, eval_seconds=round(time.time() - t0, 1), **{f: getattr(cfg.planning, f) for f in fields})
    print(json.dumps(r), flush=True)
    return r


def write_results(out: str, benchmark: str, run: str, results: dict) -> None:
    """The benchmark's JSON with its command, run, git revision and machine (written after every row or part, so an
    interrupted run keeps what it measured)."""
    from amia.infra.provenance import git_revision, machine

    doc = {"benchmark": benchmark, "command": " ".join([f"benchmarks/{benchmark}.py", *sys.argv[1:]]), "run": run,
           "git_rev": git_revision(), "machine": machine(), "results": results}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(doc, indent=2))
