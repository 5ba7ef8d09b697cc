"""Learning-rate schedules as pure functions of the step (numpy, no torch).

Conventions (DESIGN.md, "Numeric conventions"): t = optimizer updates completed
(0-based), lr0 = optimizer lr, m = warm-up length, T = total - m is the decay's
own length and u = t - m. With ``per="epoch"`` every unit is an epoch: m, T and
u count epochs and every batch of epoch e uses the value at t = e.

- Linear warm-up (Goyal et al. 2017, "Accurate, Large Minibatch SGD"), in the
  Bag of Tricks form (He et al. 2019): lr = start + (lr0 - start)·(t+1)/m, so
  the first batch uses lr0/m and batch m uses lr0.
- step / multistep: torch StepLR / MultiStepLR, counted in epochs from the start
  of training, not from the end of the warm-up.
- cosine: SGDR without restarts (Loshchilov & Hutter 2017); cosine_restarts is
  SGDR proper (torch CosineAnnealingWarmRestarts on u).
- onecycle: Smith & Topin 2018, "Super-Convergence" (torch OneCycleLR, cos
  anneal, two phases); it brings its own warm-up.
- inverse_sqrt: the Transformer schedule (Vaswani et al. 2017), lr0·sqrt(s/(u+s)).
- wsd: warmup-stable-decay (Hu et al. 2024, MiniCPM; Hägele et al. 2024):
  hold lr0, then cool down linearly to min_lr over the last decay_fraction·T.

Every decay starts at u = 0 with lr0 and is clamped at its end value after T.
One vectorized core serves `lr_at` (one step), `lr_curve` and `preview`, so
the planned curve and the lr the training loop applies cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tricks.spec import ScheduleSpec

Array = np.ndarray


def warmup_steps(schedule: ScheduleSpec, steps_per_epoch: int) -> int:
    """m in optimizer steps: warmup.steps, or round(warmup.epochs · steps_per_epoch)."""
    w = schedule.warmup
    if w is None:
        return 0
    if w.steps is not None:
        return w.steps
    return int(round(w.epochs * steps_per_epoch))


def _units(schedule: ScheduleSpec, steps_per_epoch: int, epochs: int) -> tuple[int, int, int]:
    """(m, total, units per epoch) in the schedule's own unit: batches or epochs."""
    if schedule.per == "epoch":
        w = schedule.warmup
        return (0 if w is None else int(w.epochs)), epochs, 1
    return warmup_steps(schedule, steps_per_epoch), steps_per_epoch * epochs, steps_per_epoch


# ----------------------------------------------------------------- the decays
# Each takes (decay spec, lr0, t, u, T, upe, m) with t and u int64 arrays, u
# already clamped to [0, T], and returns float64 lrs. upe = units per epoch.


def _constant(d, lr0, t, u, T, upe, m):
    return np.full(u.shape, lr0, dtype=np.float64)


def _step(d, lr0, t, u, T, upe, m):
    k = (t // upe) // d.step_epochs
    return lr0 * d.gamma ** k.astype(np.float64)


def _multistep(d, lr0, t, u, T, upe, m):
    # k = number of milestones <= epoch (torch MultiStepLR)
    k = np.searchsorted(np.asarray(d.milestones), t // upe, side="right")
    return lr0 * d.gamma ** k.astype(np.float64)


def _cosine(d, lr0, t, u, T, upe, m):
    return d.min_lr + (lr0 - d.min_lr) * 0.5 * (1.0 + np.cos(np.pi * u / T))


def _linear(d, lr0, t, u, T, upe, m):
    return lr0 + (d.min_lr - lr0) * (u / T)


def _exponential(d, lr0, t, u, T, upe, m):
    # gamma is per epoch; in batch mode it is applied smoothly, gamma^(1/upe) per batch
    return lr0 * d.gamma ** (u / upe)


def _polynomial(d, lr0, t, u, T, upe, m):
    return d.min_lr + (lr0 - d.min_lr) * (1.0 - u / T) ** d.power


def _inverse_sqrt(d, lr0, t, u, T, upe, m):
    s = d.timescale_steps or m or 1
    return lr0 * np.sqrt(s / (u + s))


def _wsd(d, lr0, t, u, T, upe, m):
    n_decay = max(1, int(round(d.decay_fraction * T)))
    into = np.clip(u - (T - n_decay), 0, n_decay)
    return lr0 + (d.min_lr - lr0) * (into / n_decay)


def _cosine_restarts(d, lr0, t, u, T, upe, m):
    """torch CosineAnnealingWarmRestarts in closed form, exact in integers."""
    t0 = max(1, int(round(d.t0_epochs * upe)))
    if d.t_mult == 1:
        t_cur, t_i = u % t0, np.full(u.shape, t0)
    else:
        # cycle k starts at t0·(mult^k - 1)/(mult - 1); a handful of cycles at most
        t_cur, t_i = u.copy(), np.full(u.shape, t0)
        start, length = t0, t0 * d.t_mult
        while u.size and start <= u.max():
            later = u >= start
            t_cur[later], t_i[later] = u[later] - start, length
            start, length = start + length, length * d.t_mult
    return d.min_lr + (lr0 - d.min_lr) * (1.0 + np.cos(np.pi * t_cur / t_i)) / 2


_DECAYS: dict[str, Callable[..., Array]] = {
    "constant": _constant,
    "step": _step,
    "multistep": _multistep,
    "cosine": _cosine,
    "linear": _linear,
    "exponential": _exponential,
    "polynomial": _polynomial,
    "inverse_sqrt": _inverse_sqrt,
    "wsd": _wsd,
    "cosine_restarts": _cosine_restarts,
}


def _onecycle(d, lr0: float, t: Array, total: int) -> Array:
    """torch OneCycleLR(max_lr=lr0, anneal_strategy="cos", three_phase=False)."""
    start = lr0 / d.div_factor
    final = start / d.final_div_factor
    peak_at = float(d.pct_start * total) - 1  # torch's phase-1 end_step, may be fractional
    end_at = total - 1
    rising = t <= peak_at
    # torch divides by zero when peak_at == 0; the peak is then at step 0
    pct_up = t / peak_at if peak_at > 0 else np.ones(t.shape)
    pct_down = (t - peak_at) / (end_at - peak_at)
    up = lr0 + (start - lr0) / 2.0 * (np.cos(np.pi * pct_up) + 1)
    down = final + (lr0 - final) / 2.0 * (np.cos(np.pi * pct_down) + 1)
    return np.where(rising, up, down)


def _lr_units(t: Array, *, lr0: float, schedule: ScheduleSpec, m: int, total: int, upe: int):
    """The lr at each t (int64 array, in the schedule's unit)."""
    d = schedule.decay
    if d.kind == "onecycle":
        return _onecycle(d, lr0, np.minimum(t, total - 1), total)
    T = total - m
    assert T > 0, f"warm-up ({m}) must be shorter than training ({total})"
    # step kinds count from the start: past the end keep the last epoch's value
    t_dec = np.minimum(t, total - 1)
    u = np.clip(t - m, 0, T)
    lr = _DECAYS[d.kind](d, lr0, t_dec, u, T, upe, m)
    if m > 0:
        start = schedule.warmup.start_lr
        lr = np.where(t < m, start + (lr0 - start) * ((t + 1) / m), lr)
    return lr


def lr_at(
    t: int, *, lr0: float, schedule: ScheduleSpec, steps_per_epoch: int, epochs: int
) -> float:
    """The lr for optimizer update t (0-based)."""
    assert t >= 0, f"step {t} is negative"
    m, total, upe = _units(schedule, steps_per_epoch, epochs)
    i = t // steps_per_epoch if schedule.per == "epoch" else t
    arr = np.array([i], dtype=np.int64)
    return float(_lr_units(arr, lr0=lr0, schedule=schedule, m=m, total=total, upe=upe)[0])


def lr_curve(*, lr0: float, schedule: ScheduleSpec, steps_per_epoch: int, epochs: int) -> Array:
    """The lr of every update, float64 of length steps_per_epoch · epochs."""
    m, total, upe = _units(schedule, steps_per_epoch, epochs)
    t = np.arange(total, dtype=np.int64)
    lr = _lr_units(t, lr0=lr0, schedule=schedule, m=m, total=total, upe=upe)
    if schedule.per == "epoch":
        lr = np.repeat(lr, steps_per_epoch)
    return lr.astype(np.float64, copy=False)


def preview(*, lr: float, epochs: int, steps_per_epoch: int, schedule: ScheduleSpec) -> dict:
    """{"step", "lr", "total_steps"} for POST /schedules/preview; vectorized, cheap."""
    curve = lr_curve(lr0=lr, schedule=schedule, steps_per_epoch=steps_per_epoch, epochs=epochs)
    n = int(curve.size)
    return {"step": np.arange(n).tolist(), "lr": curve.tolist(), "total_steps": n}
