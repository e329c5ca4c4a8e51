"""Data-parallel training on CPU: two gloo processes on 127.0.0.1 against one process on the whole batch.

The batch statistics of VICReg / SIGReg are taken over the whole batch (``amia.infra.distributed.gather_batch``),
so the gradient that DDP averages over two half batches must equal the gradient of one process on the
concatenated batch, and both ranks must hold the same weights after every optimizer step.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from amia.infra import distributed as dist_utils
from amia.models.encoder import EncoderConfig
from amia.models.jepa import JEPA, JEPAConfig, LossConfig
from amia.models.predictor import PredictorConfig

ENV = "amia/TwoRooms-v0"
WORLD = 2
OBS_SHAPE, ACTION_DIM = (2, 64, 64), 2
STEPS, LR = 3, 1e-3
TIMEOUT_S = 120

_BASE = dict(pred=1.0, var=1.0, cov=1.0, std_target=1.0, expander=0, smooth=0.5, idm=0.5, sigreg=1.0)
LOSSES = {  # every weight spelt out, so a change of LossConfig's defaults does not change what is tested
    "vicreg": dict(_BASE, regularizer="vicreg"),
    "vicreg_expander": dict(_BASE, regularizer="vicreg", expander=16),
    "sigreg": dict(_BASE, regularizer="sigreg", sigreg_directions=32),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Four windows of 4 steps: ``obs uint8 (4, 5, 2, 64, 64)``, ``actions (4, 4, 2)``."""
    g = torch.Generator().manual_seed(1234)
    obs = torch.randint(0, 256, (4, 5, *OBS_SHAPE), generator=g, dtype=torch.uint8)
    act = torch.rand(4, 4, ACTION_DIM, generator=g) * 2 - 1
    return obs, act


def build_model(loss: dict) -> JEPA:
    torch.manual_seed(0)
    cfg = JEPAConfig(encoder=EncoderConfig(dim=8, channels=(4, 8), downsample=4),
                     predictor=PredictorConfig(hidden=16), loss=LossConfig(**loss))
    return JEPA(cfg, OBS_SHAPE, ACTION_DIM)


def grads_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def train_steps(model: torch.nn.Module, forward, obs: torch.Tensor, act: torch.Tensor) -> dict:
    """Gradient and loss of step 0, then ``STEPS`` AdamW steps (seed = step); the result to compare."""
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    out = {}
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        terms = forward(obs, act, seed=step)
        terms["loss"].backward()
        if step == 0:
            out["grads"] = grads_of(model)
            out["terms"] = {k: float(v.detach()) for k, v in terms.items()}
        opt.step()
    out["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return out


def _set_env(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD))


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    """Rank ``rank`` of 2: for every loss of ``LOSSES``, DDP on its half of the fixed batch."""
    _set_env(rank, port)
    torch.set_num_threads(1)
    assert dist_utils.init_from_env("cpu")
    try:
        assert dist_utils.is_distributed() and dist_utils.rank() == rank and dist_utils.world_size() == WORLD
        obs, act = fixed_batch()
        half = slice(rank * 2, rank * 2 + 2)
        for name, loss in LOSSES.items():
            model = build_model(loss)
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            result = train_steps(model, ddp, obs[half], act[half])
            torch.save(result, Path(out_dir) / f"{name}.rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _train_worker(rank: int, port: int, data: str, out: str, result_dir: str) -> None:
    from amia.training.world_model import train

    _set_env(rank, port)
    try:
        metrics = train(ENV, out, _tiny_train_config(), data=data, progress=False)
        Path(result_dir, f"rank{rank}.json").write_text(json.dumps(metrics))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _tiny_train_config():
    from amia.training.world_model import TrainConfig

    return TrainConfig(steps=4, batch_size=4, window=4, val_every=0, log_every=2, checkpoint_every=2,
                       diag_windows=16, threads=1, warmup=2,
                       jepa=JEPAConfig(encoder=EncoderConfig(dim=8, channels=(4, 8), downsample=4),
                                       predictor=PredictorConfig(hidden=16)))


def run_workers(fn, args: tuple) -> None:
    """Start ``WORLD`` spawned processes ``fn(rank, port, *args)``; fail (and kill them) after ``TIMEOUT_S``.

    A worker killed by a signal before finishing (seen once in CI: gloo's rendezvous aborting in C++,
    "terminate called without an active exception") is retried once on a fresh port; a Python error is not.
    """
    try:
        _run_workers_once(fn, args)
    except mp.ProcessExitedException:
        _run_workers_once(fn, args)


def _run_workers_once(fn, args: tuple) -> None:
    ctx = mp.start_processes(fn, args=(free_port(), *args), nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"DDP workers did not finish within {TIMEOUT_S} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join()


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str, rtol=1e-4, atol=1e-6) -> None:
    assert a.keys() == b.keys()
    bad = {k: float((a[k] - b[k]).abs().max()) for k in a if not torch.allclose(a[k], b[k], rtol=rtol, atol=atol)}
    assert not bad, f"{what} differ (max abs difference per tensor): {bad}"


def assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    assert a.keys() == b.keys()
    bad = [k for k in a if not torch.equal(a[k], b[k])]
    assert not bad, f"{what} differ: {bad}"


@pytest.fixture(autouse=True)
def one_thread():
    """The single-process side on one thread too (much faster than two on a busy two-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory) -> Path:
    """One pair of processes computes the DDP side for every loss (process start-up dominates the cost)."""
    out = tmp_path_factory.mktemp("ddp")
    run_workers(_ddp_worker, (str(out),))
    return out


@pytest.mark.parametrize("name", list(LOSSES))
def test_ddp_gradient_and_weights_match_one_process_on_the_whole_batch(name, ddp_results):
    loss = LOSSES[name]
    r0, r1 = (torch.load(ddp_results / f"{name}.rank{r}.pt") for r in range(WORLD))

    obs, act = fixed_batch()
    single_model = build_model(loss)
    single = train_steps(single_model, single_model, obs, act)
    assert not dist.is_initialized()
    expected_terms = {"pred", "smooth", "idm", "loss"} | ({"var", "cov"} if loss["regularizer"] == "vicreg" else {"sigreg"})
    assert set(single["terms"]) == expected_terms

    # DDP averages the ranks' gradients: both hold the same one, the gradient on the concatenated batch
    assert_equal(r0["grads"], r1["grads"], "the two ranks' gradients")
    assert_close(r0["grads"], single["grads"], "DDP and single-process gradients")
    assert all(float(g.abs().max()) > 1e-6 for k, g in single["grads"].items() if k.endswith("weight")), \
        "a weight got no gradient"

    # batch statistics are global (identical on both ranks); per-sample means average to the full batch's
    for k, v in single["terms"].items():
        if k in ("var", "cov", "sigreg"):
            assert r0["terms"][k] == pytest.approx(v, rel=1e-4, abs=1e-7), k
            assert r1["terms"][k] == pytest.approx(v, rel=1e-4, abs=1e-7), k
        else:
            assert (r0["terms"][k] + r1["terms"][k]) / 2 == pytest.approx(v, rel=1e-4, abs=1e-7), k

    # after STEPS optimizer steps both ranks hold bit-identical weights, close to the single process's
    assert_equal(r0["state"], r1["state"], "the two ranks' weights")
    # ... except where the exact gradient is 0: VICReg is shift-invariant, so the expander's output bias only
    # gets round-off (~1e-7), whose sign Adam turns into full-size steps that depend on summation order
    flat = {k for k, g in single["grads"].items() if float(g.abs().max()) < 1e-6}
    assert flat == ({"expander.2.bias"} if loss.get("expander") and loss["regularizer"] == "vicreg" else set())
    assert_close({k: v for k, v in r0["state"].items() if k not in flat},
                 {k: v for k, v in single["state"].items() if k not in flat},
                 "DDP and single-process weights", rtol=1e-4, atol=1e-5)
    start = build_model(loss).state_dict()
    assert any(not torch.equal(start[k], v) for k, v in single["state"].items()), "training did not move"


@pytest.mark.parametrize("name", ["vicreg", "sigreg"])
def test_without_a_global_batch_statistic_the_gradients_would_differ(name):
    """Control for the test above: averaging per-half gradients (DDP without ``gather_batch``) is *not* the
    whole-batch gradient, so the equality there really checks that the regulariser sees the global batch."""
    loss = LOSSES[name]
    obs, act = fixed_batch()
    model = build_model(loss)
    model(obs, act, seed=0)["loss"].backward()
    full = grads_of(model)
    halves = []
    for r in range(WORLD):
        model.zero_grad(set_to_none=True)
        model(obs[2 * r:2 * r + 2], act[2 * r:2 * r + 2], seed=0)["loss"].backward()
        halves.append(grads_of(model))
    naive = {k: (halves[0][k] + halves[1][k]) / 2 for k in full}
    assert any(not torch.allclose(naive[k], full[k], rtol=1e-4, atol=1e-6) for k in full)


def test_gather_batch_is_identity_in_one_process():
    x = torch.randn(5, 3, requires_grad=True)
    assert not dist_utils.is_distributed() and dist_utils.rank() == 0 and dist_utils.world_size() == 1
    y = dist_utils.gather_batch(x)
    assert y is x
    assert dist_utils.init_from_env("cpu") is False  # no WORLD_SIZE > 1 in the environment: no process group


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from amia.data.collect import CollectConfig, collect

    path = tmp_path_factory.mktemp("ddpdata") / "data.h5"
    collect(ENV, path, CollectConfig(episodes=8, steps=20, batch=8), progress=False)
    return path


def test_train_under_two_processes_finishes_and_writes_metrics_once(tiny_data, tmp_path):
    from amia.infra.checkpoint import read_checkpoint

    run, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    run_workers(_train_worker, (str(tiny_data), str(run), str(results)))
    m0 = json.loads((results / "rank0.json").read_text())
    m1 = json.loads((results / "rank1.json").read_text())
    assert m1 == {}, "only rank 0 reports metrics"
    assert m0["world_size"] == WORLD and m0["steps"] == 4
    assert json.loads((run / "metrics.json").read_text()) == m0
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["train", "train", "final"], "each row is written once (by rank 0)"
    assert [r["step"] for r in rows] == [2, 4, 4]
    _, meta, _ = read_checkpoint(run / "checkpoint.safetensors")
    assert meta["step"] == 4
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 4
