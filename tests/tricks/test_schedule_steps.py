"""tricks.schedule_steps: the realised step counts against where the lr curve itself
changes, the roundings refused, and the default step / multistep decays against torch's
StepLR / MultiStepLR at the documented fractions of training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as S

from tricks.schedule_steps import check_realised, realised
from tricks.schedules import lr_curve
from tricks.spec import JobSpec, ScheduleSpec, SpecError

LR0 = 0.1


def curve(s: ScheduleSpec, spe: int, epochs: int) -> np.ndarray:
    return lr_curve(lr0=LR0, schedule=s, steps_per_epoch=spe, epochs=epochs)


def torch_lrs(make, n: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR0)
    sched, out = make(opt), []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("epochs", [2, 3, 10, 20, 31])
def test_default_step_decay_is_every_third_of_training(epochs):
    s = ScheduleSpec(decay={"kind": "step"})
    every = -(-epochs // 3)  # ceil(epochs / 3): decays at 1/3 and 2/3 at most
    want = torch_lrs(lambda o: S.StepLR(o, step_size=every, gamma=0.1), epochs)
    got = curve(s, 1, epochs)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert 1 <= realised(s, steps_per_epoch=1, epochs=epochs)["decays"] <= 2


@pytest.mark.parametrize("epochs", [2, 3, 4, 20, 90])
def test_default_multistep_is_at_half_and_three_quarters(epochs):
    s = ScheduleSpec(decay={"kind": "multistep"})
    ms = sorted({m for m in (epochs // 2, 3 * epochs // 4) if 1 <= m < epochs})
    want = torch_lrs(lambda o: S.MultiStepLR(o, milestones=ms, gamma=0.1), epochs)
    np.testing.assert_allclose(curve(s, 1, epochs), want, rtol=1e-12)
    assert realised(s, steps_per_epoch=1, epochs=epochs)["decay_epochs"] == ms
    if epochs == 20:
        assert ms == [10, 15]


def test_explicit_values_are_kept_and_checked():
    s = ScheduleSpec(decay={"kind": "step", "step_epochs": 2})
    assert realised(s, steps_per_epoch=3, epochs=7)["decay_boundaries"] == [6, 12, 18]
    with pytest.raises(ValueError, match="step_epochs"):
        JobSpec(data={"dataset": "digits"}, schedule={"decay": {"kind": "step", "step_epochs": 30}})
    with pytest.raises(ValueError, match="milestones"):
        JobSpec(
            data={"dataset": "digits"},
            schedule={"decay": {"kind": "multistep", "milestones": [5, 25]}},
        )
    # one epoch has no boundary to decay at: said, not silently ignored
    with pytest.raises(ValueError, match="step_epochs"):
        JobSpec(
            data={"dataset": "digits"},
            training={"epochs": 1},
            schedule={"decay": {"kind": "step"}},
        )


CURVES = [
    ({"warmup": {"epochs": 1.5}, "decay": {"kind": "cosine"}}, 7, 6),
    ({"decay": {"kind": "step", "step_epochs": 2, "gamma": 0.5}}, 5, 7),
    ({"decay": {"kind": "multistep", "milestones": [1, 4]}, "per": "epoch"}, 4, 6),
    ({"decay": {"kind": "cosine_restarts", "t0_epochs": 0.4, "t_mult": 2}}, 10, 4),
    ({"decay": {"kind": "cosine_restarts", "t0_epochs": 2, "t_mult": 1}, "per": "epoch"}, 3, 7),
    ({"decay": {"kind": "onecycle", "pct_start": 0.3}}, 9, 4),
    ({"warmup": {"steps": 5}, "decay": {"kind": "wsd", "decay_fraction": 0.25}}, 8, 5),
]


@pytest.mark.parametrize(("sched", "spe", "epochs"), CURVES)
def test_realised_counts_are_where_the_curve_changes(sched, spe, epochs):
    s = ScheduleSpec(**sched)
    lr = curve(s, spe, epochs)
    r = realised(s, steps_per_epoch=spe, epochs=epochs)
    assert r["total_steps"] == lr.size == r["warmup_steps"] + r["decay_steps"]
    m = r["warmup_steps"]
    if s.warmup is not None:  # the ramp ends at lr0 on its last step
        assert np.all(lr[: m - 1] < LR0) and lr[m - 1] == pytest.approx(LR0)
    kind = s.decay.kind
    if kind in ("step", "multistep"):
        drops = np.flatnonzero(lr[1:] < lr[:-1] * (1 - 1e-9)) + 1
        assert drops.tolist() == r["decay_boundaries"]
    if kind == "cosine_restarts":
        rises = np.flatnonzero(lr[1:] > lr[:-1] * (1 + 1e-9)) + 1
        assert [m, *rises.tolist()] == r["restart_steps"]
        assert r["cycles"] == len(r["restart_steps"])
    if kind == "onecycle":
        assert int(np.argmax(lr)) == r["peak_step"]
    if kind == "wsd":
        c = r["cooldown_start_step"]
        assert lr[c] == pytest.approx(LR0) and lr[c + 1] < LR0


@pytest.mark.parametrize(
    ("sched", "spe", "epochs", "loc", "count"),
    [
        ({"warmup": {"epochs": 0.05}}, 7, 10, ("schedule", "warmup", "epochs"), "0 steps"),
        ({"warmup": {"epochs": 1.99}}, 7, 2, ("schedule", "warmup", "epochs"), "14 steps"),
        (
            {"decay": {"kind": "cosine_restarts", "t0_epochs": 0.05}},
            7,
            10,
            ("schedule", "decay", "t0_epochs"),
            "0 steps",
        ),
        (
            {"decay": {"kind": "cosine_restarts", "t0_epochs": 0.4}, "per": "epoch"},
            7,
            10,
            ("schedule", "decay", "t0_epochs"),
            "whole number",
        ),
    ],
)
def test_lengths_that_round_to_nothing_are_refused(sched, spe, epochs, loc, count):
    with pytest.raises(SpecError) as ei:
        check_realised(ScheduleSpec(**sched), steps_per_epoch=spe, epochs=epochs)
    assert ei.value.loc == loc and count in ei.value.msg and f"{spe}" in ei.value.msg


def test_lengths_that_round_to_something_pass():
    # 1.5 × 7 = 10.5 → 10 steps: allowed, and the plan shows 10
    s = ScheduleSpec(warmup={"epochs": 1.5})
    check_realised(s, steps_per_epoch=7, epochs=10)
    assert realised(s, steps_per_epoch=7, epochs=10)["warmup_steps"] == 10
    check_realised(
        ScheduleSpec(decay={"kind": "cosine_restarts", "t0_epochs": 3}, per="epoch"),
        steps_per_epoch=7,
        epochs=10,
    )


def test_lists_are_bounded_on_long_runs():
    s = ScheduleSpec(decay={"kind": "cosine_restarts", "t0_epochs": 0.001})
    r = realised(s, steps_per_epoch=10_000, epochs=1000)  # 10M steps, a restart every 10
    assert r["cycles"] == 1_000_000 and len(r["restart_steps"]) == 64
