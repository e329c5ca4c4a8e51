"""The one resumable training loop that every trained part of the agent goes through: the world model, level 2
of the H-JEPA and level 2's critic.

What it does once for all of them: resume from the last checkpoint (refusing one that was made with other
settings or on other weights), log to ``log.jsonl`` and TensorBoard, show progress, save atomically every few
steps, and stop cleanly on Ctrl-C or SIGTERM (the checkpoint saved, the command to resume printed). Batches
and noise depend only on ``(seed, step)`` in every caller, so an interrupted and resumed run ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from amia.infra.checkpoint import (
    CheckpointError,
    atomic_write_text,
    load_optimizer,
    load_weights,
    meta_field,
    read_checkpoint,
    save_checkpoint,
)
from amia.infra.run_dir import RunError, config_diff
from amia.infra.validate import refuse_links


class TrainingError(RuntimeError):
    """Training cannot go on: a loss that is no longer a finite number."""


class StopFlag:
    """SIGINT / SIGTERM ask the loop to stop at the next step boundary (a second SIGINT stops at once)."""

    def __init__(self) -> None:
        self.set, self.hard = False, False
        self._old: dict = {}

    def __enter__(self) -> StopFlag:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.set and signum == signal.SIGINT:
            self.hard = True
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Logger:
    """One JSON line per event in ``log.jsonl`` and the same scalars in TensorBoard (``tb/``)."""

    def __init__(self, out: Path, enabled: bool = True):
        self.enabled, self.out, self.tb = enabled, Path(out), None

    def log(self, step: int, kind: str, values: dict) -> None:
        if not self.enabled:
            return
        path = self.out / "log.jsonl"
        refuse_links(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps({"step": step, "kind": kind, "time": time.time(), **values}) + "\n")
        if self.tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out / "tb"))
            except ImportError:
                return
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def warmup_cosine(lr: float, warmup: int, steps: int) -> Callable[[int], float]:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 5% of ``lr`` at ``steps``."""

    def schedule(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        p = (step - warmup) / max(1, steps - warmup)
        return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))

    return schedule


def write_summary(path: Path, summary: dict) -> dict:
    """Write a JSON summary atomically and return it."""
    atomic_write_text(path, json.dumps(summary, indent=2))
    return summary


class TrainingLoop:
    """Train ``module`` with ``optimizer`` for ``steps`` steps, checkpointed in ``path``.

    ``identity``: checkpoint meta that a resumed checkpoint must carry unchanged (a dict, such as ``config``, is
    compared key by key, anything else, such as a fingerprint of the weights trained on, exactly); ``optional``:
    identity keys that older checkpoints may lack. A config's ``threads`` never blocks a resume: it decides how fast
    the steps run, not what they learn. ``name`` labels the progress
    bar and the log rows; ``log_dir`` holds ``log.jsonl``. ``main`` is false on every process but the first of a
    distributed run (no files, no bar).
    """

    def __init__(self, name: str, path: Path, module: nn.Module, optimizer: torch.optim.Optimizer, steps: int,
                 identity: dict, log_dir: Path, log_every: int, checkpoint_every: int, progress: bool = True,
                 main: bool = True, optional: tuple[str, ...] = ()):
        self.name, self.path, self.module, self.optimizer, self.steps = name, Path(path), module, optimizer, steps
        self.identity, self.log_dir, self.main, self.progress = identity, Path(log_dir), main, progress
        self.log_every, self.checkpoint_every = log_every, checkpoint_every
        self.step, self.seconds, self.last, self.saved_step, self.optional = 0, 0.0, {}, 0, optional
        self.logger = Logger(self.log_dir, enabled=main)

    @property
    def finished(self) -> bool:
        return self.step >= self.steps

    def resume(self) -> None:
        """Continue from ``path`` if it exists (``RunError`` if it belongs to other settings or weights)."""
        if not self.path.exists():
            return
        tensors, meta, groups = read_checkpoint(self.path)
        for key, want in self.identity.items():
            if key in self.optional and key not in meta:  # written before amia recorded it
                continue
            have = meta_field(meta, key, self.path)
            if isinstance(want, dict) and isinstance(have, dict):
                have, want = ({k: v for k, v in d.items() if k != "threads"} for d in (have, want))
            diffs = config_diff(have, want) if isinstance(want, dict) else ([] if have == want else [
                f"{key}: was {have!r}, now {want!r}"])
            if diffs:
                raise RunError(f"{self.path} does not belong to this run: it was trained with other settings "
                               f"({'; '.join(diffs[:5])}); rerun with the same settings to resume, or delete it (or "
                               "choose another --out) to start again")
        step, seconds = meta_field(meta, "step", self.path), meta_field(meta, "seconds", self.path)
        if not isinstance(step, int) or not 0 <= step <= self.steps:
            raise CheckpointError(f"{self.path}: step={step!r}: expected an integer in [0, {self.steps}]")
        load_weights(self.module, tensors, self.path)
        load_optimizer(self.optimizer, tensors, groups)
        self.step, self.seconds, self.saved_step = step, seconds, step

    def save(self) -> None:
        if self.main:
            save_checkpoint(self.path, self.module, self.optimizer,
                            {"step": self.step, "seconds": self.seconds, **self.identity})
            self.saved_step = self.step

    def check_finite(self, terms: dict[str, torch.Tensor]) -> float:
        """The step's loss as a number; ``TrainingError`` at once if it is NaN or infinite (before any update)."""
        value = float(terms["loss"].detach())
        if not math.isfinite(value):
            bad = [k for k, v in terms.items() if not math.isfinite(float(v.detach()))]
            kept = f"the checkpoint at step {self.saved_step} in {self.path} is kept" if self.saved_step else \
                "no checkpoint was written"
            raise TrainingError(f"{self.name}: the loss is {value} at step {self.step + 1} (non-finite terms: "
                                f"{', '.join(bad)}); training stopped, {kept}. Check the data (`amia info`) and "
                                "lower lr or raise grad_clip")
        return value

    def _log(self, sums: dict[str, float], interval: int, lr, extra: dict, bar) -> None:
        """One log row: the interval's mean of every term, the learning rate and ``extra``."""
        self.last = {k: v / interval for k, v in sums.items()}
        row = dict(self.last, **({"lr": lr(self.step - 1)} if lr is not None else {}), **extra)
        self.logger.log(self.step, self.name, row)
        bar.set_postfix({k: f"{v:.4f}" for k, v in self.last.items() if k in ("loss", "pred")})

    def run(self, loss: Callable[[int], dict[str, torch.Tensor]], lr: Callable[[int], float] | None = None,
            grad_clip: float = 0.0, after_step: Callable[[], None] | None = None,
            every_step: Callable[[int], None] | None = None, log_extra: Callable[[int, float], dict] | None = None,
            agree: Callable[[bool], bool] = bool, stop_after: int | None = None) -> dict | None:
        """Run the remaining steps. ``loss(step)`` draws the step's batch and returns its terms (``loss`` is
        minimised); ``lr(step)`` sets the learning rate; ``after_step`` runs after each update (a target network
        following), ``every_step(step)`` after each step is counted (periodic reports); ``log_extra(steps,
        seconds)`` adds fields to each log row; ``agree`` makes every process agree to stop (distributed runs).
        ``stop_after`` stops as an interruption would once that many steps are done (tests). Returns
        ``{"stopped_at": step}`` when stopped early, else ``None``."""
        bar = tqdm(total=self.steps, initial=self.step, desc=self.name, unit="step",
                   disable=not self.progress or not self.main)
        sums: dict[str, float] = {}
        interval_start, interval = time.perf_counter(), 0
        params = [p for p in self.module.parameters() if p.requires_grad]
        with StopFlag() as stop:
            try:
                while self.step < self.steps:
                    terms = self._step(loss, lr, grad_clip, after_step, params)
                    interval += 1
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + float(v.detach())
                    if self.step % self.log_every == 0 or self.step == self.steps:
                        extra = log_extra(interval, time.perf_counter() - interval_start) if log_extra else {}
                        self._log(sums, interval, lr, extra, bar)
                        sums, interval_start, interval = {}, time.perf_counter(), 0
                    if every_step is not None:
                        every_step(self.step)
                    if self.step % self.checkpoint_every == 0 or self.step == self.steps:
                        self.save()
                    bar.update(1)
                    stopping = agree(stop.set or (stop_after is not None and self.step >= stop_after))
                    if stopping and self.step < self.steps:
                        return self._halt(stop.set, bar)
            except KeyboardInterrupt:
                if stop.hard:
                    self._lost()
                raise
        bar.close()
        self.logger.close()
        return None

    def _step(self, loss, lr, grad_clip: float, after_step, params: list) -> dict[str, torch.Tensor]:
        """One update: the step's learning rate, its loss (refused if not finite), the gradient step."""
        t0 = time.perf_counter()
        if lr is not None:
            for g in self.optimizer.param_groups:
                g["lr"] = lr(self.step)
        terms = loss(self.step)
        self.check_finite(terms)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        self.optimizer.step()
        if after_step is not None:
            after_step()
        self.step += 1
        self.seconds += time.perf_counter() - t0
        return terms

    def _halt(self, interrupted: bool, bar) -> dict:
        """Stop before the end: save, then report the interruption (``KeyboardInterrupt``) or the early stop."""
        self.save()
        bar.close()
        self.logger.close()
        if interrupted:
            print(f"\ninterrupted at step {self.step}; checkpoint saved in {self.path}. Rerun the same command to "
                  "resume.")
            raise KeyboardInterrupt
        return {"stopped_at": self.step}

    def _lost(self) -> None:
        """Say plainly what a second Ctrl-C, which stops at once without saving, has lost."""
        self.logger.close()
        kept = (f"the checkpoint of step {self.saved_step} in {self.path} is kept" if self.saved_step else
                "no checkpoint had been written")
        print(f"\nsecond interrupt: stopped at once during step {self.step + 1}, without saving; {kept} "
              f"({self.step - self.saved_step} step(s) since are lost). Rerun the same command to resume.", flush=True)


__all__ = ["Logger", "StopFlag", "TrainingError", "TrainingLoop", "warmup_cosine", "write_summary"]
