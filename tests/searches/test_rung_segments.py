"""The pieces ASHA builds trials from, in-process: a run that stops at a rung
(training.stop_after_epochs) and a fork from that rung's checkpoint go on exactly as
the uninterrupted run; a cool-down fork follows the linear decay to zero."""

from __future__ import annotations

import pytest
import torch

from tricks.data import load_dataset
from tricks.fork import seed_checkpoint
from tricks.pinned import pinned_path
from tricks.schedules import lr_at
from tricks.spec import JobSpec, steps_per_epoch
from tricks.train import train


def spec(**training) -> JobSpec:
    return JobSpec.model_validate(
        {
            "data": {"dataset": "digits"},
            "model": {"arch": "mlp", "hidden": [32]},
            "optimizer": {"name": "sgd", "lr": 0.2, "momentum": 0.9},
            "schedule": {"decay": {"kind": "cosine"}},
            "regularization": {"label_smoothing": 0.1},
            "training": {"epochs": 5, "batch_size": 64, "log_every": 5, **training},
        }
    )


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return load_dataset(spec().data, seed=0)


def test_stop_at_rung_then_fork_equals_uninterrupted(digits, tmp_path):
    full = train(spec(), digits)
    seg = train(spec(stop_after_epochs=2), digits, checkpoint_dir=tmp_path / "a")
    assert seg.status == "succeeded" and seg.stop_reason == "stop_after_epochs"
    assert seg.epochs_run == 2
    assert seg.history["val_acc"]["value"] == full.history["val_acc"]["value"][:2]
    seed_checkpoint(pinned_path(tmp_path / "a", 2), tmp_path / "b", spec())
    rest = train(spec(), digits, checkpoint_dir=tmp_path / "b")
    assert rest.status == "succeeded" and rest.stop_reason is None
    assert rest.metrics == full.metrics  # bit-for-bit: same RNG streams, same lr curve
    assert rest.history["val_acc"]["value"] == full.history["val_acc"]["value"][2:]


def test_cooldown_fork_decays_linearly_to_zero(digits, tmp_path):
    train(spec(stop_after_epochs=2), digits, checkpoint_dir=tmp_path / "a")
    spe = steps_per_epoch(len(digits.x_train), 64)
    base = spec()
    lr_r = lr_at(2 * spe, lr0=0.2, schedule=base.schedule, steps_per_epoch=spe, epochs=5)
    cool = JobSpec.model_validate(
        {
            **base.model_dump(mode="json"),
            "optimizer": {**base.optimizer.model_dump(mode="json"), "lr": lr_r},
            "schedule": {
                "per": "batch",
                "decay": {"kind": "wsd", "decay_fraction": 1 / 3, "min_lr": 0.0},
            },
            "training": {**base.training.model_dump(mode="json"), "epochs": 3, "log_every": 1},
        }
    )
    seed_checkpoint(pinned_path(tmp_path / "a", 2), tmp_path / "c", cool)
    r = train(cool, digits, checkpoint_dir=tmp_path / "c")
    assert r.status == "succeeded"
    steps, lrs = r.history["lr"]["step"], r.history["lr"]["value"]
    assert steps == list(range(2 * spe, 3 * spe))  # from the rung on, every update logged
    # oracle by hand: update t of the cool-down (0-based from the rung) has lr_r (1 - t/n)
    expected = [lr_r * (1 - t / spe) for t in range(spe)]
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-12)
