"""Named job specs: the one place for "a quick job" and "a job that runs until cancelled".

Keyword arguments override fields of `training`; change another section with a dict
merge where the test needs it: `{**small_spec(), "model": {"arch": "cnn"}}`.

No test may depend on how long a job takes. A test that needs a job *running* uses
`long_spec` (or LONG_TRAINING), whose length no test ever reaches, and cancels it once
it has seen what it needs; registered with the `cleanup` fixture, it is cancelled after
the test whatever happened. A test that needs a job *finished* uses a short one and
waits for it to finish.
"""

from __future__ import annotations

from typing import Any

from tricks.spec import MAX_EPOCHS

# As many epochs as a spec allows, with a log point (where a cancel is seen and progress
# is reported) every update: tests cancel long before the end, at any training speed.
LONG_TRAINING: dict[str, Any] = {
    "epochs": MAX_EPOCHS,
    "batch_size": 16,
    "log_every": 1,
    "checkpoint_every": 1,  # tests read or resume from the checkpoint of each epoch
}


def minimal_spec(**training: Any) -> dict[str, Any]:
    """Only the dataset and a short training block: every other section is the API's default.

    For the tests against an API without a worker, whose jobs stay queued (digits: 3
    epochs of 22 steps of 64).
    """
    return {"data": {"dataset": "digits"}, "training": {"epochs": 3, "batch_size": 64, **training}}


def small_spec(**training: Any) -> dict[str, Any]:
    """Digits, a tiny MLP, warm-up + cosine, label smoothing + mixup: a second or two on one core.

    The warm-up is half an epoch, so that any number of epochs is a valid spec.
    """
    return {
        "name": "small",
        "data": {"dataset": "digits", "val_fraction": 0.2},
        "model": {"arch": "mlp", "hidden": [32]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": {"warmup": {"epochs": 0.5, "start_lr": 0.0}, "decay": {"kind": "cosine"}},
        "regularization": {"label_smoothing": 0.1, "mixup": {"alpha": 0.2}},
        "training": {"epochs": 3, "batch_size": 64, "seed": 0, "log_every": 5, **training},
    }


def long_spec(**training: Any) -> dict[str, Any]:
    """small_spec that runs until cancelled (LONG_TRAINING); cancel it, or let `cleanup` do so."""
    return {**small_spec(**{**LONG_TRAINING, **training}), "name": "long"}


def plain_spec(**training: Any) -> dict[str, Any]:
    """Digits, a tiny MLP at the default constant lr (0.05), no regularization: a sweep base
    whose variants differ only in what the sweep sets."""
    return {
        "data": {"dataset": "digits"},
        "model": {"arch": "mlp", "hidden": [32]},
        "schedule": {"decay": {"kind": "constant"}},
        "training": {"epochs": 2, "device": "cpu", "log_every": 5, **training},
    }


def reliability_spec(epochs: int = 30, **training: Any) -> dict[str, Any]:
    """Digits, a small MLP: 90 updates per epoch on one core; every random draw comes from
    the seeded generators a checkpoint holds, so a resumed run equals an uninterrupted one
    exactly (the reliability tests' oracle)."""
    return {
        "name": "reliability",
        "data": {"dataset": "digits", "val_fraction": 0.2},
        "model": {"arch": "mlp", "hidden": [256, 256]},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "schedule": {"warmup": {"epochs": 1, "start_lr": 0.0}, "decay": {"kind": "cosine"}},
        "regularization": {"label_smoothing": 0.1, "mixup": {"alpha": 0.2}},
        "training": {
            "epochs": epochs,
            "batch_size": 16,
            "seed": 0,
            "log_every": 10,
            "checkpoint_every": 1,  # killed workers resume from the last epoch's checkpoint
            **training,
        },
    }
