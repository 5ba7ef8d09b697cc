"""The LR range test's suggestion holds up: training at it is as good as the best of a
small grid around it (examples/lr_range_test.json, digits, CPU), the rule finds the
steepest descent of a hand-made curve despite noise and an exploding tail, and a test
that stops early says so (progress at the step it stopped, stop_reason "diverged")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tricks.callbacks import Callbacks
from tricks.data import load_dataset
from tricks.lr_find import centred_mean, ema_beta, suggest_lr, suggestion_window
from tricks.spec import JobSpec, LRRangeSpec
from tricks.train import train

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lr_range_test.json"
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def example() -> JobSpec:
    return JobSpec.model_validate(json.loads(EXAMPLE.read_text()))


@pytest.fixture(scope="module")
def digits(example):
    torch.set_num_threads(1)
    return load_dataset(example.data, seed=example.training.seed)


def final_acc(range_spec: JobSpec, dataset, lr: float, epochs: int = 20) -> float:
    """Mean final val_acc over SEEDS of the example trained as a job at `lr`."""
    accs = []
    for seed in SEEDS:
        spec = range_spec.model_copy(
            update={
                "task": "train",
                "lr_range": None,
                "optimizer": range_spec.optimizer.model_copy(update={"lr": lr}),
                "training": range_spec.training.model_copy(update={"epochs": epochs, "seed": seed}),
            }
        )
        accs.append(train(spec, dataset).metrics["val_acc"])
    return float(np.mean(accs))


class Recorder(Callbacks):
    def __init__(self) -> None:
        self.logs: list[tuple[int, dict, dict]] = []

    def on_log(self, step, metrics, progress):
        self.logs.append((step, dict(metrics), dict(progress)))


# 22 short trainings (20 epochs of digits each): 8-12 s on one core
def test_training_at_the_suggestion_is_within_a_point_of_the_best_nearby(example, digits):
    r = train(example, digits).lr_range
    lr = r["suggested_lr"]
    assert r["diverged_at_lr"] is not None and lr < r["diverged_at_lr"] / 3
    grid = sorted({lr * 0.3, lr * 3, 0.01, 0.03, 0.1, 0.3})
    accs = {g: final_acc(example, digits, g) for g in grid}
    at = final_acc(example, digits, lr)
    best = max(accs.values())
    # the old rule read 0.433 off a lagging EMA: 85% here (64.6% in the issue) vs ~98%
    assert at >= best - 0.01, f"suggested {lr:.3g}: {at:.4f}; grid {accs}"


def test_the_rule_finds_the_steepest_descent_of_a_noisy_curve_with_an_exploding_tail():
    # loss = 2 − tanh(2·(log10 lr + 2)): falls fastest at lr = 1e-2 (hand-computed:
    # d/dx tanh is largest at 0), with noise, then explodes past lr = 0.3
    steps = 120
    lrs = np.geomspace(1e-5, 10.0, steps)
    x = np.log10(lrs)
    rng = np.random.default_rng(0)
    losses = 2.0 - np.tanh(2.0 * (x + 2.0)) + rng.normal(0.0, 0.05, steps)
    losses = np.where(lrs > 0.3, 2.0 * np.exp(3.0 * (x - np.log10(0.3))) + 5, losses)
    keep = int(np.searchsorted(lrs, 1.0))  # where a stop rule would have ended it
    beta = ema_beta(LRRangeSpec(steps=steps))
    ema, avg = [], 0.0
    for i, v in enumerate(losses[:keep]):
        avg = beta * avg + (1 - beta) * v
        ema.append(avg / (1 - beta ** (i + 1)))
    lr, rule = suggest_lr(
        list(lrs[:keep]), list(losses[:keep]), ema, steps=steps, min_lr=1e-5, diverge_factor=4.0
    )
    assert lr == pytest.approx(1e-2, rel=0.25)
    assert "steepest descent" in rule


def test_smoothing_scales_with_the_length_of_the_test():
    assert ema_beta(LRRangeSpec(steps=100)) == pytest.approx(0.84)
    assert ema_beta(LRRangeSpec(steps=1000)) == pytest.approx(0.984)
    assert ema_beta(LRRangeSpec(steps=10)) == pytest.approx(0.5)
    assert ema_beta(LRRangeSpec(steps=100, smoothing=0.98)) == 0.98  # an explicit β is kept
    assert suggestion_window(100) == 13 and suggestion_window(10) == 5
    assert suggestion_window(1000) == 125
    # the centred mean has no lag: a straight line is its own average wherever the whole
    # window fits (the only points the rule reads its slope at); an EMA lags it by ~β/(1−β)
    line = np.arange(20, dtype=np.float64)
    assert centred_mean(line, 5)[2:-2] == pytest.approx(line[2:-2])
    assert centred_mean(line, 5)[0] == pytest.approx(1.0)  # hand-computed: (0 + 1 + 2) / 3


def test_a_range_test_that_diverges_says_so_and_reports_where_it_stopped(example, digits):
    cb = Recorder()
    res = train(example, digits, cb)
    r = res.lr_range
    assert res.status == "succeeded" and r["stopped_early"]
    assert res.stop_reason == "diverged"
    assert res.steps < example.lr_range.steps
    # every step run is counted once: a finite loss that trips the stop rule is the last
    # recorded point (it was counted twice), a non-finite one is not recorded
    assert r["lrs"][-1] == r["diverged_at_lr"]  # the smoothed loss blew up here, finitely
    assert res.steps == len(r["lrs"])
    step, metrics, progress = cb.logs[-1]
    assert step == res.steps - 1
    assert progress["step"] == res.steps and progress["total_steps"] == example.lr_range.steps
    assert metrics["lr"] == pytest.approx(r["diverged_at_lr"])


def test_a_range_test_that_runs_to_the_end_has_no_stop_reason(example, digits):
    spec = example.model_copy(update={"lr_range": LRRangeSpec(min_lr=1e-4, max_lr=1e-2, steps=25)})
    cb = Recorder()
    res = train(spec, digits, cb)
    assert res.stop_reason is None and not res.lr_range["stopped_early"]
    assert res.steps == 25
    assert cb.logs[-1][0] == 24 and cb.logs[-1][2]["step"] == 25  # logged at 10, 20 and 25
    assert [s for s, _, _ in cb.logs] == [9, 19, 24]
