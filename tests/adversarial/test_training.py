"""Training that notices: a non-finite loss stops training at once naming the step and keeping the last good
checkpoint; bad data is refused before training starts, naming the file and the index; a second Ctrl-C says
plainly what it lost."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch

from amia.data.dataset import DatasetError
from amia.infra.checkpoint import CheckpointError, read_checkpoint
from amia.training.loop import TrainingError, TrainingLoop
from amia.training.world_model import train

from .conftest import ENV, arrays, tiny_config, write_file


def loop(tmp_path, steps: int = 6, checkpoint_every: int = 2) -> TrainingLoop:
    torch.manual_seed(0)
    module = torch.nn.Linear(2, 1)
    return TrainingLoop("toy", tmp_path / "c.safetensors", module, torch.optim.SGD(module.parameters(), lr=0.1), steps,
                        {"config": {"steps": steps}}, tmp_path, log_every=1, checkpoint_every=checkpoint_every,
                        progress=False)


def loss_that_breaks_at(toy: TrainingLoop, bad_step: int, value: float):
    x = torch.ones(4, 2)

    def loss(step: int) -> dict:
        out = toy.module(x).pow(2).mean()
        return {"loss": out * value if step + 1 == bad_step else out}
    return loss


@pytest.mark.parametrize("bad_step, value, kept", [(3, math.nan, 2), (5, math.inf, 4), (4, -math.inf, 2), (1, math.nan, 0),
                                                   (6, math.nan, 4)])
def test_a_non_finite_loss_stops_at_once_keeping_the_last_good_checkpoint(tmp_path, bad_step, value, kept):
    toy = loop(tmp_path)
    with pytest.raises(TrainingError) as e:
        toy.run(loss_that_breaks_at(toy, bad_step, value))
    msg = str(e.value)
    assert f"the loss is {value * 1.0} at step {bad_step}" in msg and "training stopped" in msg
    assert all(torch.isfinite(p).all() for p in toy.module.parameters())  # no update with the bad loss
    if kept:
        tensors, meta, _ = read_checkpoint(tmp_path / "c.safetensors")
        assert meta["step"] == kept and f"checkpoint at step {kept}" in msg
    else:
        assert not (tmp_path / "c.safetensors").exists() and "no checkpoint was written" in msg


def test_weights_that_turn_non_finite_are_not_saved(tmp_path):
    toy = loop(tmp_path, checkpoint_every=1)
    x = torch.ones(4, 2)

    def poison() -> None:
        if toy.step == 1:  # after the second update
            with torch.no_grad():
                toy.module.bias.fill_(math.nan)

    with pytest.raises(CheckpointError, match="not saved: model/bias hold non-finite values"):
        toy.run(lambda step: {"loss": toy.module(x).pow(2).mean()}, after_step=poison)
    _, meta, _ = read_checkpoint(tmp_path / "c.safetensors")
    assert meta["step"] == 1


def test_a_second_interrupt_says_what_was_lost(tmp_path, capsys):
    toy = loop(tmp_path, steps=50, checkpoint_every=2)
    x = torch.ones(4, 2)

    def loss(step: int) -> dict:
        if step == 4:  # during step 5, after the checkpoint of step 4: Ctrl-C twice
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return {"loss": toy.module(x).pow(2).mean()}

    with pytest.raises(KeyboardInterrupt):
        toy.run(loss)
    out = capsys.readouterr().out
    assert "second interrupt: stopped at once during step 5, without saving" in out
    assert f"the checkpoint of step 4 in {tmp_path / 'c.safetensors'} is kept (0 step(s) since are lost)" in out
    _, meta, _ = read_checkpoint(tmp_path / "c.safetensors")
    assert meta["step"] == 4


def test_one_interrupt_saves_and_says_so(tmp_path, capsys):
    toy = loop(tmp_path, steps=50, checkpoint_every=10)
    x = torch.ones(4, 2)

    def loss(step: int) -> dict:
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return {"loss": toy.module(x).pow(2).mean()}

    with pytest.raises(KeyboardInterrupt):
        toy.run(loss)
    assert "interrupted at step 3; checkpoint saved" in capsys.readouterr().out
    _, meta, _ = read_checkpoint(tmp_path / "c.safetensors")
    assert meta["step"] == 3


BAD_DATA = [  # (change to the good file, the words naming file and index)
    ("nan-action", ("action", (40, 0), math.nan), "dataset '/action' holds a non-finite value at index 40"),
    ("inf-action", ("action", (0, 1), math.inf), "dataset '/action' holds a non-finite value at index 0"),
    ("huge-action", ("action", (7, 1), 1e30), "actions reach 1e+30 in size"),
    ("nan-state", ("state", (99, 0), math.nan), "dataset '/state' holds a non-finite value at index 99"),
]


@pytest.mark.parametrize("name, change, words", BAD_DATA, ids=[n for n, _, _ in BAD_DATA])
def test_a_bad_value_in_the_data_is_reported_before_training(data_file, tmp_path, name, change, words):
    data = arrays(data_file)
    key, index, value = change
    data[key] = data[key].copy()
    data[key][index] = value
    bad = write_file(tmp_path / "bad.h5", data)
    with pytest.raises(DatasetError) as e:
        train(ENV, tmp_path / "run", tiny_config(), data=str(bad), progress=False)
    assert str(e.value).startswith(f"{bad}: ") and words in str(e.value)
    assert not (tmp_path / "run").exists()


def test_a_good_tiny_run_trains_to_finite_weights(trained_run):
    tensors, meta, _ = read_checkpoint(trained_run / "checkpoint.safetensors")
    assert meta["step"] == 4 and meta["env_id"] == ENV and meta["config"]["steps"] == 4
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if v.is_floating_point())
