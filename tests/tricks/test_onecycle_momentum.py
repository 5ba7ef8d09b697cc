"""onecycle's cycle_momentum against torch.optim.lr_scheduler.OneCycleLR's momentum at every
step (SGD: momentum; Adam/AdamW: betas[0]), per batch and per epoch, and through the
training step (tricks.step.Stepper sets it on the optimizer the update uses)."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from tricks.data import load_dataset
from tricks.models import build_model
from tricks.regularization import build_optimizer
from tricks.schedules import momentum_at
from tricks.spec import JobSpec, ScheduleSpec
from tricks.step import Stepper

SPE, EPOCHS, LR0 = 7, 5, 0.1


def torch_momentum(opt_name: str, units: int, pct: float, base: float, top: float) -> list[float]:
    """torch's momentum (or beta1) for each of `units` scheduler steps."""
    p = torch.nn.Parameter(torch.zeros(2))
    opt = (
        torch.optim.SGD([p], lr=LR0, momentum=0.9)
        if opt_name == "sgd"
        else getattr(torch.optim, {"adam": "Adam", "adamw": "AdamW"}[opt_name])([p], lr=LR0)
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=LR0,
        total_steps=units,
        pct_start=pct,
        base_momentum=base,
        max_momentum=top,
        cycle_momentum=True,
    )
    out = []
    for _ in range(units):
        g = opt.param_groups[0]
        out.append(g["betas"][0] if "betas" in g else g["momentum"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("per", ["batch", "epoch"])
@pytest.mark.parametrize(("pct", "base", "top"), [(0.3, 0.85, 0.95), (0.5, 0.8, 0.9)])
def test_momentum_matches_torch_onecycle(opt_name, per, pct, base, top):
    s = ScheduleSpec(
        decay={"kind": "onecycle", "pct_start": pct, "base_momentum": base, "max_momentum": top},
        per=per,
    )
    units = SPE * EPOCHS if per == "batch" else EPOCHS
    want = torch_momentum(opt_name, units, pct, base, top)
    got = [
        momentum_at(t, schedule=s, steps_per_epoch=SPE, epochs=EPOCHS) for t in range(SPE * EPOCHS)
    ]
    if per == "epoch":  # every batch of epoch e uses torch's value at e
        want = [w for w in want for _ in range(SPE)]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_hand_values_and_defaults():
    s = ScheduleSpec(decay={"kind": "onecycle", "pct_start": 0.5})  # defaults 0.85 → 0.95
    # 10 steps, peak at step 4: 0.95 at 0, 0.85 at the peak, cos halfway 0.90 at step 2
    at = [momentum_at(t, schedule=s, steps_per_epoch=5, epochs=2) for t in (0, 2, 4, 9)]
    assert at == pytest.approx([0.95, 0.90, 0.85, 0.95])
    off = ScheduleSpec(decay={"kind": "onecycle", "cycle_momentum": False})
    assert momentum_at(3, schedule=off, steps_per_epoch=5, epochs=2) is None
    assert momentum_at(3, schedule=ScheduleSpec(), steps_per_epoch=5, epochs=2) is None
    with pytest.raises(ValidationError, match="base_momentum .* is above max_momentum"):
        ScheduleSpec(decay={"kind": "onecycle", "base_momentum": 0.95, "max_momentum": 0.9})


@pytest.mark.parametrize("opt", [{"name": "sgd", "momentum": 0.9}, {"name": "adamw", "lr": 1e-3}])
def test_the_training_step_uses_the_cycled_momentum(opt):
    spec = JobSpec(
        data={"dataset": "digits"},
        model={"hidden": [8], "batch_norm": False},
        optimizer=opt,
        schedule={"decay": {"kind": "onecycle", "pct_start": 0.3}},
        training={"epochs": 2, "batch_size": 256, "log_every": 1},
    )
    ds = load_dataset(spec.data, seed=0)
    torch.manual_seed(0)
    model = build_model(spec.model, tuple(ds.input_shape), ds.num_classes, 0.0)
    optim = build_optimizer(spec.optimizer, model)
    stepper = Stepper(spec, ds, model, optim, None, torch.Generator().manual_seed(0), None, 1)
    spe = stepper.spe
    want = torch_momentum(spec.optimizer.name, spe * 2, 0.3, 0.85, 0.95)
    seen = []
    for t in range(spe * 2):
        if t % spe == 0:
            stepper.start_epoch(None, None)
        stepper.step(0.01, t, t % spe)
        stepper.read()
        g = optim.param_groups[0]
        seen.append(g["betas"][0] if "betas" in g else g["momentum"])
    assert seen == pytest.approx(want, rel=1e-12)
    if "betas" in optim.param_groups[0]:
        assert optim.param_groups[0]["betas"][1] == 0.999  # beta2 untouched


def test_the_range_test_does_not_cycle_momentum():
    spec = JobSpec(
        task="lr_range_test",
        data={"dataset": "digits"},
        model={"hidden": [8], "batch_norm": False},
        schedule={"decay": {"kind": "onecycle"}},
        lr_range={"steps": 10},
    )
    ds = load_dataset(spec.data, seed=0)
    model = build_model(spec.model, tuple(ds.input_shape), ds.num_classes, 0.0)
    optim = build_optimizer(spec.optimizer, model)
    stepper = Stepper(spec, ds, model, optim, None, torch.Generator().manual_seed(0), None, 1)
    stepper.start_epoch(None, None)
    stepper.step(0.01, 0, 0)
    assert optim.param_groups[0]["momentum"] == spec.optimizer.momentum
