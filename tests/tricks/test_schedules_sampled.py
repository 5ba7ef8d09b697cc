"""tricks.schedules.lr_sampled and LrSteps against the full lr_curve.

lr_curve is itself checked against torch's schedulers (test_schedules.py); here it is the
oracle: a sampled point must be the full curve's value at that step, the first and last
steps are kept, and each bucket's minimum and maximum (keep_indices' buckets) survive, so
the global ones do too. Memory is checked with tracemalloc on runs of millions of steps.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from tricks import schedules
from tricks.schedules import LrSteps, lr_curve, lr_sampled
from tricks.spec import ScheduleSpec

LR0 = 0.1
DECAYS = {
    "constant": {"kind": "constant"},
    "step": {"kind": "step", "step_epochs": 2, "gamma": 0.5},
    "multistep": {"kind": "multistep", "milestones": [2, 3, 5], "gamma": 0.3},
    "cosine": {"kind": "cosine", "min_lr": 0.001},
    "linear": {"kind": "linear", "min_lr": 0.002},
    "exponential": {"kind": "exponential", "gamma": 0.7},
    "onecycle": {"kind": "onecycle", "pct_start": 0.3, "div_factor": 25.0},
    "restarts_x1": {"kind": "cosine_restarts", "t0_epochs": 1.0, "t_mult": 1, "min_lr": 0.001},
    "restarts_x2": {"kind": "cosine_restarts", "t0_epochs": 0.5, "t_mult": 2},
    "polynomial": {"kind": "polynomial", "power": 2.0, "min_lr": 0.0},
    "inverse_sqrt": {"kind": "inverse_sqrt", "timescale_steps": 3},
    "wsd": {"kind": "wsd", "decay_fraction": 0.3, "min_lr": 0.004},
}
WARMUPS = {"batch": {"epochs": 2, "start_lr": 0.01}, "epoch": {"epochs": 2, "start_lr": 0.0}}
SPE, EPOCHS = 37, 7


def spec(name: str, per: str, warm: bool) -> ScheduleSpec:
    decay = DECAYS[name]
    warmup = WARMUPS[per] if warm and decay["kind"] != "onecycle" else None
    return ScheduleSpec.model_validate({"decay": decay, "per": per, "warmup": warmup})


def buckets(n: int, max_points: int) -> np.ndarray:
    """keep_indices' bucket edges."""
    return np.linspace(0, n, max(1, (max_points - 2) // 2) + 1).astype(np.int64)


@pytest.mark.parametrize("max_points", [2, 3, 10, 51, 1000])
@pytest.mark.parametrize("warm", [False, True])
@pytest.mark.parametrize("per", ["batch", "epoch"])
@pytest.mark.parametrize("name", list(DECAYS))
def test_sampled_points_are_the_full_curve_with_every_bucket_extreme(name, per, warm, max_points):
    s = spec(name, per, warm)
    full = lr_curve(lr0=LR0, schedule=s, steps_per_epoch=SPE, epochs=EPOCHS)
    steps, lrs = lr_sampled(
        lr0=LR0, schedule=s, steps_per_epoch=SPE, epochs=EPOCHS, max_points=max_points
    )
    n = full.size
    assert steps.dtype == np.int64 and len(steps) == len(lrs) <= max_points
    assert list(steps) == sorted(set(steps.tolist()))
    assert steps[0] == 0 and steps[-1] == n - 1
    assert np.array_equal(lrs, full[steps])  # exactly the full curve's values
    if max_points < 4:  # only the ends fit
        assert list(steps) == [0, n - 1]
        return
    assert lrs.min() == full.min() and lrs.max() == full.max()
    if n <= max_points:
        assert len(steps) == n
        return
    edges = buckets(n, max_points)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        inside = (steps >= a) & (steps < b)
        assert lrs[inside].min() == full[a:b].min(), (a, b)
        assert lrs[inside].max() == full[a:b].max(), (a, b)


@pytest.mark.parametrize("pct_start", [0.37, 0.5, 0.999])
def test_onecycle_peak_is_kept_on_a_long_run(pct_start):
    """The peak sits inside a wide bucket, far from any bucket edge: it is still found."""
    s = ScheduleSpec.model_validate({"decay": {"kind": "onecycle", "pct_start": pct_start}})
    full = lr_curve(lr0=LR0, schedule=s, steps_per_epoch=101, epochs=97)
    steps, lrs = lr_sampled(lr0=LR0, schedule=s, steps_per_epoch=101, epochs=97, max_points=6)
    assert lrs.max() == full.max() and int(steps[lrs.argmax()]) == int(full.argmax())
    assert lrs.min() == full.min()


@pytest.mark.parametrize(
    "decay",
    [{"kind": "cosine"}, {"kind": "cosine_restarts", "t0_epochs": 0.25}, {"kind": "onecycle"}],
)
def test_sampled_never_allocates_the_whole_run(decay):
    """4M steps: a float64 curve alone would be 32 MB; sampling stays under 8 MB in all."""
    s = ScheduleSpec.model_validate({"decay": decay})
    tracemalloc.start()
    try:
        steps, lrs = lr_sampled(
            lr0=LR0, schedule=s, steps_per_epoch=4000, epochs=1000, max_points=1000
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak
    assert steps[0] == 0 and steps[-1] == 4_000_000 - 1 and len(steps) <= 1000
    # spot-check against lr_at
    for t, v in zip(steps[::50], lrs[::50], strict=True):
        want = schedules.lr_at(int(t), lr0=LR0, schedule=s, steps_per_epoch=4000, epochs=1000)
        assert v == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("per", ["batch", "epoch"])
@pytest.mark.parametrize("name", list(DECAYS))
def test_lr_steps_table_equals_lr_curve_in_any_order(monkeypatch, name, per):
    """The training loop's per-step lr, chunked small here, read forwards and after a jump."""
    monkeypatch.setattr(schedules, "SAMPLE_CHUNK", 16)
    s = spec(name, per, warm=True)
    full = lr_curve(lr0=LR0, schedule=s, steps_per_epoch=SPE, epochs=EPOCHS).tolist()
    table = LrSteps(lr0=LR0, schedule=s, steps_per_epoch=SPE, epochs=EPOCHS)
    assert [table[t] for t in range(len(full))] == full
    resumed = LrSteps(lr0=LR0, schedule=s, steps_per_epoch=SPE, epochs=EPOCHS)
    order = list(range(101, len(full))) + [0, 5, 200, 3]
    assert [resumed[t] for t in order] == [full[t] for t in order]
    assert all(isinstance(x, float) for x in table.values) and len(table.values) <= 16


@pytest.mark.parametrize("chunk", [7, 64])
@pytest.mark.parametrize("max_points", [6, 40])
@pytest.mark.parametrize("per", ["batch", "epoch"])
@pytest.mark.parametrize("name", list(DECAYS))
def test_walked_curve_keeps_the_same_extremes_across_chunks(
    monkeypatch, name, per, max_points, chunk
):
    """The walk (cosine_restarts' path), forced for every kind with tiny chunks so that
    buckets straddle chunks: the same points as keep_indices keeps from the full curve."""
    from api.downsample import keep_indices

    monkeypatch.setattr(schedules, "SAMPLE_CHUNK", chunk)
    monkeypatch.setattr(schedules, "_breakpoints", lambda *a: None)
    s = spec(name, per, warm=True)
    full = lr_curve(lr0=LR0, schedule=s, steps_per_epoch=SPE, epochs=EPOCHS)
    steps, lrs = lr_sampled(
        lr0=LR0, schedule=s, steps_per_epoch=SPE, epochs=EPOCHS, max_points=max_points
    )
    assert steps.tolist() == keep_indices(full, max_points).tolist()
    assert np.array_equal(lrs, full[steps])
