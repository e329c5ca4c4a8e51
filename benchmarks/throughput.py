"""Training throughput of the default JEPA world model: frames per second through one full training step.

    python benchmarks/throughput.py --device cpu --out benchmarks/results/throughput_cpu.json
    python benchmarks/throughput.py --device cuda --batch 64 256 1024 --out benchmarks/results/throughput_gpu.json
    python benchmarks/throughput.py --device cuda --batch 256 1024 --size default 4x --out ...

``--size 4x`` doubles the encoder's channels and state size and the predictor's width: about 4x the parameters
and the arithmetic per frame of the default model (``SIZES``).

A training step encodes every frame of each window (``batch x (window + 1)`` frames), rolls the predictor
out over the window, and back-propagates; numbers are medians over timed steps after warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


SIZES = {"default": [], "4x": ["jepa.encoder.dim=128", "jepa.encoder.channels=[64,128,128,128]",
                              "jepa.predictor.hidden=1024"]}


def model_config(size: str):
    """The JEPA config of a named size (``SIZES``)."""
    from amia.infra.config import apply_overrides
    from amia.training.world_model import TrainConfig

    return apply_overrides(TrainConfig(), SIZES[size]).jepa


def measure(device: str, batch: int, window: int, steps: int, warmup: int, size: str = "default") -> dict:
    from amia.models.jepa import JEPA

    torch.manual_seed(0)
    dev = torch.device(device)
    model = JEPA(model_config(size), (2, 64, 64), 2).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (batch, window + 1, 2, 64, 64), generator=g, dtype=torch.uint8).to(dev)
    act = torch.randn(batch, window, 2, generator=g).to(dev)
    times = []
    for i in range(warmup + steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(obs, act)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    params = sum(p.numel() for p in model.parameters())
    return {"device": device, "size": size, "parameters": params, "batch": batch, "window": window,
            "step_ms_median": round(1000 * med, 2), "frames_per_s": round(batch * (window + 1) / med, 1),
            "windows_per_s": round(batch / med, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, nargs="+", default=[64])
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--size", nargs="+", default=["default"], choices=list(SIZES))
    p.add_argument("--out", default=None)
    args = p.parse_args()
    from amia.infra.host import set_threads

    set_threads(args.threads)  # --threads, else OMP_NUM_THREADS, else every core, as every amia command
    rows = [measure(args.device, b, args.window, args.steps, args.warmup, size) for size in args.size for b in args.batch]
    for r in rows:
        print(json.dumps(r))
    if args.out:
        write_results(args.out, "train_throughput", rows)


def write_results(out: str, benchmark: str, rows: list[dict]) -> None:
    """One JSON file: the benchmark's name, its command line, the revision, the machine and its rows."""
    from amia.infra.provenance import git_revision, machine

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps({"benchmark": benchmark, "command": " ".join(sys.argv), "git_rev": git_revision(),
                                     "machine": machine(), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
