"""The LR range test (tricks.lr_find) on real data (digits, CPU): the curve and its
suggestion, stop requests (a preempt is "preempted", as in training), and that each
update is the training loop's own: label-smoothed targets (against a hand-computed
smoothed cross-entropy), mixing and augmentation, the fp16 grad scaler (CUDA only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tricks.callbacks import Callbacks
from tricks.data import load_dataset
from tricks.models import build_model
from tricks.spec import JobSpec
from tricks.train import train

TRICKS = {
    "dropout": 0.2,
    "label_smoothing": 0.1,
    "l1": 1e-5,
    "mixup": {"alpha": 0.2},
    "augment": {"rotate": 10, "crop_padding": 1, "noise_std": 0.05},
}


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return load_dataset(JobSpec(data={"dataset": "digits"}).data, seed=0)


def range_spec(regularization=None, **lr_range) -> JobSpec:
    return JobSpec(
        task="lr_range_test",
        data={"dataset": "digits"},
        model={"hidden": [32], "batch_norm": False},
        regularization=regularization or {},
        training={"log_every": 5},
        lr_range={"min_lr": 1e-5, "max_lr": 1e-2, "steps": 30, **lr_range},
    )


class StopAt(Callbacks):
    """Answer `request` at the n-th poll of should_stop (1-based)."""

    def __init__(self, n: int, request: str) -> None:
        self.n, self.request, self.polls = n, request, 0

    def should_stop(self):
        self.polls += 1
        return self.request if self.polls == self.n else None


def test_lr_range_test_suggests_below_divergence(digits):
    spec = JobSpec(
        task="lr_range_test",
        data={"dataset": "digits"},
        model={"hidden": [64], "batch_norm": False},
        lr_range={"min_lr": 1e-5, "max_lr": 10.0, "steps": 80},
    )
    r = train(spec, digits).lr_range
    assert r["stopped_early"] and r["diverged_at_lr"] is not None
    assert 1e-5 <= r["suggested_lr"] < r["diverged_at_lr"] <= 10.0
    assert r["rule"]
    assert len(r["lrs"]) == len(r["losses"]) == len(r["smoothed"]) < 80
    assert r["lrs"][0] == pytest.approx(1e-5)
    ratios = [b / a for a, b in zip(r["lrs"], r["lrs"][1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios))  # exponential ramp


@pytest.mark.parametrize(
    ("request_", "status"), [("preempt", "preempted"), ("cancel", "cancelled")]
)
def test_stop_request_ends_the_range_test_like_training(digits, request_, status):
    r = train(range_spec(), digits, StopAt(2, request_))  # polled at steps 4 and 9
    assert r.status == status and r.error is None and r.lr_range is None
    assert r.steps == 10
    assert r.history["train_loss"]["step"] == list(range(10))


def test_range_test_loss_is_the_hand_computed_smoothed_cross_entropy(digits):
    eps, k, rel = 0.5, digits.num_classes, 1e-6
    spec = range_spec({"label_smoothing": eps})
    losses = train(spec, digits).lr_range["losses"]
    # the first loss is the untrained model's on the first batch: the first 64 of a
    # randperm drawn from a generator seeded with training.seed
    torch.manual_seed(spec.training.seed)
    model = build_model(spec.model, tuple(digits.input_shape), k, 0.0)
    perm = torch.randperm(len(digits.y_train), generator=torch.Generator().manual_seed(0))
    idx = perm[:64]
    with torch.no_grad():
        z = model(digits.x_train[idx]).double().numpy()
    y = digits.y_train[idx].numpy()
    logp = z - z.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    # −Σ_k q_k log p_k with q = (1−ε)·onehot(y) + ε/K
    smoothed = -((1 - eps) * logp[np.arange(64), y] + eps / k * logp.sum(1)).mean()
    plain = -logp[np.arange(64), y].mean()
    # an untrained model is nearly uniform, so smoothing moves its loss only a little:
    # still far more than the tolerance
    assert abs(smoothed - plain) > 100 * rel * smoothed
    assert losses[0] == pytest.approx(smoothed, rel=rel)


def test_range_test_step_is_the_training_step(digits):
    # every trick on: same seed, same first batch order, augmentation, mixing plan and
    # dropout mask, so the first update's loss is the same number in both
    spec = range_spec(TRICKS)
    first = train(spec, digits).lr_range["losses"][0]
    as_training = spec.model_copy(
        update={
            "task": "train",
            "lr_range": None,
            "training": spec.training.model_copy(update={"epochs": 1, "log_every": 1}),
        }
    )
    logged = train(as_training, digits).history["train_loss"]["value"][0]
    assert first == logged
    plain = train(range_spec(), digits).lr_range["losses"][0]
    assert first != plain  # the tricks changed the step


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 autocast is CUDA only")
def test_range_test_in_fp16_goes_through_the_grad_scaler(digits, monkeypatch):
    calls = []
    real = torch.amp.GradScaler.step
    monkeypatch.setattr(
        torch.amp.GradScaler, "step", lambda self, *a, **kw: calls.append(1) or real(self, *a, **kw)
    )
    spec = range_spec(TRICKS)
    spec = spec.model_copy(
        update={"training": spec.training.model_copy(update={"precision": "fp16"})}
    )
    r = train(spec, digits, device="cuda")
    assert r.status == "succeeded"
    assert len(calls) == r.steps > 0
    assert all(np.isfinite(r.lr_range["losses"]))
