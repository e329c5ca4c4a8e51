"""Ablation of the JEPA objective: which terms keep the representation from collapsing (Sec. 4.5.1).

Trains one world model per variant on the same dataset and reports ``probe_r2`` and ``pred_error_px_h16``
(plus collapse alarms) in one JSON file. Variants run as parallel ``amia train`` processes (``--parallel``).

    python benchmarks/ablation.py                       # the standard five variants, on the CPU
    python benchmarks/ablation.py --device cuda --parallel 5 --out benchmarks/results/ablation_gpu.json
    python benchmarks/ablation.py --variant mine jepa.loss.cov=4    # any extra variant (repeatable)
    python benchmarks/ablation.py --set steps=500                   # overrides for every variant
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "default": [],
    "no_variance": ["jepa.loss.var=0"],
    "no_covariance": ["jepa.loss.cov=0"],
    "prediction_only": ["jepa.loss.regularizer=none", "jepa.loss.smooth=0", "jepa.loss.idm=0"],
    "sigreg": ["jepa.loss.regularizer=sigreg"],
}
KEYS = ("probe_r2", "probe_r2_layout", "pred_error_px_h16", "copy_error_px_h16", "embedding_std_min",
        "effective_rank", "train_seconds", "samples_per_s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="amia/TwoRooms-v0")
    p.add_argument("--device", default="cpu")
    p.add_argument("--parallel", type=int, default=1, help="variants trained at once")
    p.add_argument("--threads", type=int, default=0, help="torch threads per variant (0: cores / parallel)")
    p.add_argument("--work", default="runs/ablation", help="where the runs and the shared dataset go")
    p.add_argument("--out", default="benchmarks/results/ablation.json")
    p.add_argument("--only", nargs="*", help="run only these variants")
    p.add_argument("--variant", nargs="+", action="append", default=[], metavar=("NAME", "KEY=VALUE"),
                   help="an extra variant: a name and its overrides")
    p.add_argument("--set", nargs="+", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="overrides applied to every variant (e.g. --set steps=500)")
    args = p.parse_args()

    from amia.data import collect
    from amia.infra.provenance import git_revision, machine
    from amia.training.world_model import TrainConfig

    variants = {k: v for k, v in VARIANTS.items() if not args.only or k in args.only}
    variants.update({v[0]: v[1:] for v in args.variant})
    work = Path(args.work)
    data = work / f"{args.env.replace('/', '_')}.h5"
    if not data.exists():
        collect(args.env, data, TrainConfig().collect)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.parallel)
    results, pending = {}, list(variants.items())
    running: list[tuple[str, subprocess.Popen, float]] = []
    while pending or running:
        while pending and len(running) < args.parallel:
            name, extra = pending.pop(0)
            cmd = [sys.executable, "-m", "amia", "train", "--env", args.env, "--data", str(data),
                   "--out", str(work / name), "--device", args.device, "--quiet",
                   f"threads={threads}", *args.overrides, *extra]
            print("start", name, " ".join(cmd[2:]), flush=True)
            log = open(work / f"{name}.log", "w")
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), time.time()))
        time.sleep(2)
        for item in list(running):
            name, proc, t0 = item
            if proc.poll() is None:
                continue
            running.remove(item)
            metrics_file = work / name / "metrics.json"
            if proc.returncode == 0 and metrics_file.exists():
                m = json.loads(metrics_file.read_text())
                results[name] = {"overrides": variants[name], **{k: m[k] for k in KEYS if k in m}}
            else:
                results[name] = {"overrides": variants[name], "error": f"exit {proc.returncode}, see {work / name}.log"}
            print(f"done {name} in {time.time() - t0:.0f}s:", json.dumps(results[name]), flush=True)

    out = {"benchmark": "jepa_objective_ablation", "env": args.env, "device": args.device,
           "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "git_rev": git_revision(),
           "machine": machine(), "common_overrides": args.overrides, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"\n{'variant':<18} {'probe_r2':>9} {'pred_px_h16':>12} {'copy_px_h16':>12} {'std_min':>8} {'rank':>6}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<18} {r['error']}")
            continue
        print(f"{name:<18} {r['probe_r2']:>9.4f} {r['pred_error_px_h16']:>12.2f} {r['copy_error_px_h16']:>12.2f} "
              f"{r['embedding_std_min']:>8.3f} {r['effective_rank']:>6.1f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
