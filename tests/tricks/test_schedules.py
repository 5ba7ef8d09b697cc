"""tricks.schedules against independent oracles: torch's own schedulers driving a
real SGD optimizer over whole runs, and values computed by hand."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as S

from tricks.schedules import lr_at, lr_curve, preview, warmup_steps
from tricks.spec import ScheduleSpec

LR0 = 0.1
SPE = 37  # steps per epoch: odd, so a batch/epoch mix-up shows
EPOCHS = 6
TOL = dict(abs=1e-9, rel=1e-9)

DECAYS = {
    "constant": {"kind": "constant"},
    "step": {"kind": "step", "step_epochs": 2, "gamma": 0.5},
    "multistep": {"kind": "multistep", "milestones": [2, 3, 5], "gamma": 0.3},
    "cosine": {"kind": "cosine", "min_lr": 0.001},
    "linear": {"kind": "linear", "min_lr": 0.002},
    "exponential": {"kind": "exponential", "gamma": 0.7},
    "onecycle": {"kind": "onecycle", "pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e3},
    "restarts_x1": {"kind": "cosine_restarts", "t0_epochs": 1.0, "t_mult": 1, "min_lr": 0.001},
    "restarts_x2": {"kind": "cosine_restarts", "t0_epochs": 0.5, "t_mult": 2, "min_lr": 0.0},
    "polynomial": {"kind": "polynomial", "power": 2.0, "min_lr": 0.0},
    "inverse_sqrt": {"kind": "inverse_sqrt", "timescale_steps": 0},
    "inverse_sqrt_s": {"kind": "inverse_sqrt", "timescale_steps": 3},
    "wsd": {"kind": "wsd", "decay_fraction": 0.3, "min_lr": 0.004},
}
# batch mode: 1.5 epochs = round(55.5) = 56 steps; epoch mode needs whole epochs
WARMUPS = {
    "batch": {"epochs": 1.5, "start_lr": 0.01},
    "epoch": {"epochs": 2, "start_lr": 0.0},
}


def spec(decay: dict, per: str = "batch", warmup: dict | None = None) -> ScheduleSpec:
    return ScheduleSpec.model_validate({"decay": decay, "per": per, "warmup": warmup})


def run_torch(make, n: int, lr0: float = LR0) -> np.ndarray:
    """The lr torch applies at each of n updates: read before the step, then step."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr0)
    sched = make(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out, dtype=np.float64)


def torch_decay(name: str, d: dict, opt, m: int, T: int, upe: int, lr0: float):
    """torch's scheduler for a decay kind, in units (batches or epochs)."""
    k = d["kind"]
    if k == "constant":
        return S.ConstantLR(opt, factor=1.0, total_iters=0)
    if k == "step":  # counted from the start of training
        return S.StepLR(opt, step_size=d["step_epochs"] * upe, gamma=d["gamma"])
    if k == "multistep":
        return S.MultiStepLR(opt, milestones=[e * upe for e in d["milestones"]], gamma=d["gamma"])
    if k == "cosine":
        return S.CosineAnnealingLR(opt, T_max=T, eta_min=d["min_lr"])
    if k == "linear":
        return S.LinearLR(opt, start_factor=1.0, end_factor=d["min_lr"] / lr0, total_iters=T)
    if k == "exponential":
        if upe == 1:
            return S.ExponentialLR(opt, gamma=d["gamma"])
        # batch mode: no torch class applies gamma per epoch smoothly; a cross-check
        return S.LambdaLR(opt, lambda u: d["gamma"] ** (u / upe))
    if k == "onecycle":
        return S.OneCycleLR(
            opt,
            max_lr=lr0,
            total_steps=m + T,
            pct_start=d["pct_start"],
            div_factor=d["div_factor"],
            final_div_factor=d["final_div_factor"],
            anneal_strategy="cos",
            three_phase=False,
            cycle_momentum=False,
        )
    if k == "cosine_restarts":
        t0 = max(1, round(d["t0_epochs"] * upe))  # half an epoch in epoch mode is 1
        return S.CosineAnnealingWarmRestarts(opt, T_0=t0, T_mult=d["t_mult"], eta_min=d["min_lr"])
    if k == "polynomial":
        assert d["min_lr"] == 0.0  # PolynomialLR has no floor
        return S.PolynomialLR(opt, total_iters=T, power=d["power"])
    if k == "inverse_sqrt":
        s = d["timescale_steps"] or m or 1
        return S.LambdaLR(opt, lambda u: math.sqrt(s / (u + s)))
    if k == "wsd":
        n_decay = round(d["decay_fraction"] * T)
        stable = S.ConstantLR(opt, factor=1.0, total_iters=0)
        cool = S.LinearLR(opt, start_factor=1.0, end_factor=d["min_lr"] / lr0, total_iters=n_decay)
        return [stable, cool], [T - n_decay]  # SequentialLR does not nest: make() joins them
    raise AssertionError(k)


def torch_oracle(name: str, per: str, warm: dict | None) -> np.ndarray:
    """torch's lr for every batch of the run (per-epoch values repeated SPE times)."""
    d = DECAYS[name]
    upe, n = (SPE, SPE * EPOCHS) if per == "batch" else (1, EPOCHS)
    m = 0 if warm is None else round(warm["epochs"] * upe)
    T = n - m

    def make(opt, warm_up: bool = True):
        decay = torch_decay(name, d, opt, m, T, upe, LR0)
        scheds, marks = decay if isinstance(decay, tuple) else ([decay], [])
        if m and warm_up:
            # Bag of Tricks warm-up as a LinearLR: start + (lr0-start)(t+1)/m for t < m
            first = warm["start_lr"] + (LR0 - warm["start_lr"]) / m
            ramp = S.LinearLR(opt, start_factor=first / LR0, end_factor=1.0, total_iters=m - 1)
            scheds, marks = [ramp, *scheds], [0, *marks]
        if len(scheds) == 1:
            return scheds[0]
        return S.SequentialLR(opt, scheds, milestones=[m * warm_up + k for k in marks])

    lr = run_torch(make, n)
    if m and d["kind"] in ("step", "multistep"):
        # these count epochs from the start of training, not from the warm-up's end
        lr[m:] = run_torch(lambda opt: make(opt, warm_up=False), n)[m:]
    return np.repeat(lr, SPE) if per == "epoch" else lr


CASES = [
    pytest.param(name, per, warm, id=f"{name}-{per}-{'warmup' if warm else 'nowarmup'}")
    for name in DECAYS
    for per in ("batch", "epoch")
    for warm in (None, WARMUPS[per])
    if not (warm and DECAYS[name]["kind"] == "onecycle")  # onecycle has its own warm-up
]


@pytest.mark.parametrize("name, per, warm", CASES)
def test_matches_torch_over_whole_run(name: str, per: str, warm: dict | None) -> None:
    s = spec(DECAYS[name], per, warm)
    want = torch_oracle(name, per, warm)
    got = lr_curve(lr0=LR0, schedule=s, steps_per_epoch=SPE, epochs=EPOCHS)
    assert got.dtype == np.float64 and got.shape == (SPE * EPOCHS,)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name, per, warm", CASES)
def test_lr_curve_equals_lr_at_every_step(name: str, per: str, warm: dict | None) -> None:
    s = spec(DECAYS[name], per, warm)
    curve = lr_curve(lr0=LR0, schedule=s, steps_per_epoch=SPE, epochs=EPOCHS)
    each = [
        lr_at(t, lr0=LR0, schedule=s, steps_per_epoch=SPE, epochs=EPOCHS) for t in range(curve.size)
    ]
    np.testing.assert_allclose(curve, each, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ hand values


def at(s: ScheduleSpec, t: int, spe: int = 10, epochs: int = 2, lr0: float = LR0) -> float:
    return lr_at(t, lr0=lr0, schedule=s, steps_per_epoch=spe, epochs=epochs)


def test_warmup_is_bag_of_tricks_rule() -> None:
    s = spec({"kind": "constant"}, warmup={"steps": 4})
    assert [at(s, t) for t in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1], **TOL)


def test_warmup_from_start_lr() -> None:
    s = spec({"kind": "constant"}, warmup={"steps": 4, "start_lr": 0.02})
    assert [at(s, t) for t in range(5)] == pytest.approx([0.04, 0.06, 0.08, 0.1, 0.1], **TOL)


def test_warmup_in_epoch_mode_holds_within_an_epoch() -> None:
    s = spec({"kind": "constant"}, per="epoch", warmup={"epochs": 2})
    curve = lr_curve(lr0=LR0, schedule=s, steps_per_epoch=3, epochs=4)
    assert curve.tolist() == pytest.approx([0.05] * 3 + [0.1] * 9, **TOL)


def test_warmup_steps() -> None:
    assert warmup_steps(spec({"kind": "cosine"}), 37) == 0
    assert warmup_steps(spec({"kind": "cosine"}, warmup={"steps": 7}), 37) == 7
    assert warmup_steps(spec({"kind": "cosine"}, warmup={"epochs": 1.5}), 37) == 56
    assert warmup_steps(spec({"kind": "cosine"}, warmup={"epochs": 0.1}), 37) == 4


def test_cosine_start_middle_end() -> None:
    s = spec({"kind": "cosine", "min_lr": 0.0}, warmup={"steps": 4})  # T = 16
    assert at(s, 4) == pytest.approx(0.1, **TOL)  # decay starts at u = 0 with lr0
    assert at(s, 5) == pytest.approx(0.05 * (1 + math.cos(math.pi / 16)), **TOL)
    assert at(s, 12) == pytest.approx(0.05, **TOL)
    assert at(s, 19) == pytest.approx(0.05 * (1 + math.cos(math.pi * 15 / 16)), **TOL)
    assert at(s, 20) == at(s, 500) == pytest.approx(0.0, **TOL)  # clamped after T


def test_cosine_min_lr() -> None:
    s = spec({"kind": "cosine", "min_lr": 0.01})
    assert [at(s, 0), at(s, 10), at(s, 100)] == pytest.approx([0.1, 0.055, 0.01], **TOL)


def test_linear_start_middle_end() -> None:
    s = spec({"kind": "linear", "min_lr": 0.0})
    assert [at(s, 0), at(s, 1), at(s, 10), at(s, 19)] == pytest.approx(
        [0.1, 0.095, 0.05, 0.005], **TOL
    )
    s = spec({"kind": "linear", "min_lr": 0.01}, warmup={"steps": 4})  # T = 16
    assert [at(s, 4), at(s, 12), at(s, 19), at(s, 99)] == pytest.approx(
        [0.1, 0.055, 0.1 - 0.09 * 15 / 16, 0.01], **TOL
    )


def test_epoch_mode_uses_the_epoch_value_for_every_batch() -> None:
    s = spec({"kind": "cosine"}, per="epoch")
    curve = lr_curve(lr0=LR0, schedule=s, steps_per_epoch=3, epochs=4)
    per_epoch = [0.05 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert curve.tolist() == pytest.approx(np.repeat(per_epoch, 3).tolist(), **TOL)


def test_step_counts_epochs_from_the_start_not_the_warmup() -> None:
    s = spec({"kind": "step", "step_epochs": 1, "gamma": 0.5}, warmup={"steps": 4})
    got = [at(s, t, spe=3, epochs=3) for t in range(9)]
    assert got == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025], **TOL)


def test_multistep_decays_at_the_milestone() -> None:
    s = spec({"kind": "multistep", "milestones": [1, 3], "gamma": 0.1})
    got = [at(s, t, spe=2, epochs=4) for t in range(8)]
    assert got == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.001, 0.001], **TOL)


def test_exponential_hand_values() -> None:
    s = spec({"kind": "exponential", "gamma": 0.5})
    assert [at(s, 0, spe=4), at(s, 2, spe=4), at(s, 4, spe=4), at(s, 6, spe=4)] == pytest.approx(
        [0.1, 0.1 * 0.5**0.5, 0.05, 0.05 * 0.5**0.5], **TOL
    )
    s = spec({"kind": "exponential", "gamma": 0.5}, warmup={"steps": 2})
    assert [at(s, 1, spe=4), at(s, 2, spe=4), at(s, 6, spe=4)] == pytest.approx(
        [0.1, 0.1, 0.05], **TOL
    )
    s = spec({"kind": "exponential", "gamma": 0.5}, per="epoch")
    assert [at(s, t, spe=4, epochs=3) for t in (0, 3, 4, 8, 11)] == pytest.approx(
        [0.1, 0.1, 0.05, 0.025, 0.025], **TOL
    )


def test_polynomial_with_floor() -> None:
    s = spec({"kind": "polynomial", "power": 2.0, "min_lr": 0.01}, warmup={"steps": 10})  # T = 10
    assert [at(s, 10), at(s, 15), at(s, 19), at(s, 40)] == pytest.approx(
        [0.1, 0.01 + 0.09 * 0.25, 0.01 + 0.09 * 0.01, 0.01], **TOL
    )


def test_inverse_sqrt_timescale_is_the_warmup() -> None:
    s = spec({"kind": "inverse_sqrt"}, warmup={"steps": 4})
    assert [at(s, 3), at(s, 4), at(s, 8), at(s, 16)] == pytest.approx(
        [0.1, 0.1, 0.1 * math.sqrt(0.5), 0.1 * math.sqrt(4 / 16)], **TOL
    )
    s = spec({"kind": "inverse_sqrt"})  # no warm-up: s = 1
    assert [at(s, 0), at(s, 3)] == pytest.approx([0.1, 0.05], **TOL)


def test_wsd_holds_then_cools_down_linearly() -> None:
    s = spec({"kind": "wsd", "decay_fraction": 0.2, "min_lr": 0.0})  # T = 20, 4 cool-down steps
    got = [at(s, t) for t in range(20)]
    assert got == pytest.approx([0.1] * 17 + [0.075, 0.05, 0.025], **TOL)
    assert at(s, 20) == pytest.approx(0.0, **TOL)


def test_onecycle_hand_values() -> None:
    # total 10, pct 0.5: peak at step 4, then cosine to lr0/25/1e4 at step 9
    s = spec({"kind": "onecycle", "pct_start": 0.5})
    got = [at(s, t, spe=5, epochs=2) for t in (0, 2, 4, 9)]
    assert got == pytest.approx([0.004, 0.052, 0.1, 0.004 / 1e4], **TOL)


def test_cosine_restarts_hand_values() -> None:
    # T_0 = 4 steps, doubling: cycles start at u = 0, 4, 12
    s = spec({"kind": "cosine_restarts", "t0_epochs": 0.4, "t_mult": 2})
    got = [at(s, t) for t in (0, 2, 4, 8, 12)]
    assert got == pytest.approx([0.1, 0.05, 0.1, 0.05, 0.1], **TOL)


# ------------------------------------------------------------------ preview


def test_preview_shape() -> None:
    s = spec({"kind": "cosine"}, warmup={"epochs": 1})
    out = preview(lr=0.2, epochs=3, steps_per_epoch=5, schedule=s)
    assert out["total_steps"] == 15
    assert out["step"] == list(range(15))
    assert all(type(v) is float for v in out["lr"])
    assert out["lr"][:5] == pytest.approx([0.04, 0.08, 0.12, 0.16, 0.2], **TOL)


def test_module_does_not_import_torch() -> None:
    code = "import sys, tricks.schedules; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
