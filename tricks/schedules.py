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

import math
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
    k = (t // upe) // d.every((m + T) // upe)  # m + T = the run, in units
    return lr0 * d.gamma ** k.astype(np.float64)


def _multistep(d, lr0, t, u, T, upe, m):
    # k = number of milestones <= epoch (torch MultiStepLR)
    k = np.searchsorted(np.asarray(d.at((m + T) // upe), dtype=np.int64), t // upe, side="right")
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


def restart_period(d, upe: int) -> int:
    """cosine_restarts' first cycle in units: round(t0_epochs · units per epoch), at least 1
    (the plan and the preview reject a t0 that rounds to 0, or a fractional one per epoch)."""
    return max(1, int(round(d.t0_epochs * upe)))


def _cosine_restarts(d, lr0, t, u, T, upe, m):
    """torch CosineAnnealingWarmRestarts in closed form, exact in integers."""
    t0 = restart_period(d, upe)
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


def momentum_at(
    t: int, *, schedule: ScheduleSpec, steps_per_epoch: int, epochs: int
) -> float | None:
    """The momentum (sgd) or beta1 (adam) for update t under onecycle's cycle_momentum
    (torch OneCycleLR: max → base while the lr rises, base → max while it falls, cos
    anneal); None when the schedule does not cycle it. Scalar maths: once per step."""
    d = schedule.decay
    if d.kind != "onecycle" or not d.cycle_momentum:
        return None
    total = epochs if schedule.per == "epoch" else steps_per_epoch * epochs
    i = min(t // steps_per_epoch if schedule.per == "epoch" else t, total - 1)
    peak_at = float(d.pct_start * total) - 1  # as _onecycle
    hi, lo = d.max_momentum, d.base_momentum
    if i <= peak_at:
        pct = i / peak_at if peak_at > 0 else 1.0
        return lo + (hi - lo) / 2.0 * (math.cos(math.pi * pct) + 1)
    pct = (i - peak_at) / (total - 1 - peak_at)
    return hi + (lo - hi) / 2.0 * (math.cos(math.pi * pct) + 1)


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


# ------------------------------------------------- bounded: never a per-step array
# A run may be planned at tens of millions of steps; the API (GET /jobs/{id}/lr, POST
# /schedules/preview) and the training loop only ever need a bounded number of them.

# Kinds that are monotone in u over the whole decay (min and max of any stretch sit at its
# ends). Step kinds are too, and they change only at epoch starts, which are breakpoints.
_MONOTONE = frozenset(
    {
        "constant",
        "step",
        "multistep",
        "cosine",
        "linear",
        "exponential",
        "polynomial",
        "inverse_sqrt",
        "wsd",
    }
)
SAMPLE_CHUNK = 1 << 16  # steps evaluated at once where a curve must be walked


def lr_steps(
    steps: Array, *, lr0: float, schedule: ScheduleSpec, steps_per_epoch: int, epochs: int
) -> Array:
    """The lr of each given update (int64 array of 0-based steps): lr_at, vectorized."""
    m, total, upe = _units(schedule, steps_per_epoch, epochs)
    t = np.asarray(steps, dtype=np.int64)
    if schedule.per == "epoch":
        t = t // steps_per_epoch
    lr = _lr_units(t, lr0=lr0, schedule=schedule, m=m, total=total, upe=upe)
    return np.asarray(lr, dtype=np.float64)


def _breakpoints(schedule: ScheduleSpec, steps_per_epoch: int, epochs: int) -> Array | None:
    """First steps of the curve's monotone pieces, or None when they are too many to list.

    Per-epoch mode: every epoch is a constant piece. Per-batch: 0, the end of the warm-up,
    every epoch start (step kinds jump only there) and the one-cycle peak."""
    n = steps_per_epoch * epochs
    starts = np.arange(epochs, dtype=np.int64) * steps_per_epoch
    if schedule.per == "epoch":
        return starts
    d = schedule.decay
    extra = [warmup_steps(schedule, steps_per_epoch)]
    if d.kind == "onecycle":
        peak_at = float(d.pct_start * n) - 1  # as _onecycle: rising while t <= peak_at
        extra.append(int(np.floor(peak_at)) + 1 if peak_at >= 0 else 0)
    elif d.kind not in _MONOTONE:
        return None  # cosine_restarts (and any new kind): walk the curve instead
    b = np.concatenate([starts, np.asarray(extra, dtype=np.int64)])
    return np.unique(b[(b >= 0) & (b < n)])


def lr_sampled(
    *,
    lr0: float,
    schedule: ScheduleSpec,
    steps_per_epoch: int,
    epochs: int,
    max_points: int,
) -> tuple[Array, Array]:
    """(steps, lrs) of at most max_points updates, as api.downsample.keep_indices keeps them
    from the full lr_curve: the first, the last, and each bucket's minimum and maximum
    (max_points // 2 - 1 buckets; below 4 points only the first and last fit).

    Never allocates per-step arrays for the whole run. Where the curve's monotone pieces
    are known (every kind but cosine_restarts, and any kind in per-epoch mode) it evaluates
    only bucket ends and piece ends, O(max_points + epochs): the extremes of a stretch of a
    monotone piece are at its ends. Otherwise it walks the curve SAMPLE_CHUNK steps at a time.
    """
    n = steps_per_epoch * epochs
    kw = dict(lr0=lr0, schedule=schedule, steps_per_epoch=steps_per_epoch, epochs=epochs)
    if n <= max_points:
        steps = np.arange(n, dtype=np.int64)
        return steps, lr_steps(steps, **kw)
    buckets = (max_points - 2) // 2  # the same buckets as keep_indices
    if buckets < 1:  # room for the ends only
        keep = np.array([0, n - 1], dtype=np.int64)
        return keep, lr_steps(keep, **kw)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    pieces = _breakpoints(schedule, steps_per_epoch, epochs)
    if pieces is not None:
        cand = np.unique(
            np.concatenate([edges[:-1], edges[1:] - 1, pieces, pieces - 1, [0, n - 1]])
        )
        cand = cand[(cand >= 0) & (cand < n)]
        lo_i, hi_i = _bucket_extremes(cand, lr_steps(cand, **kw), edges)
        keep = np.unique(np.concatenate([[0, n - 1], lo_i, hi_i]))
    else:
        keep = _walk_extremes(edges, n, kw)
    return keep, lr_steps(keep, **kw)


def _bucket_extremes(steps: Array, lrs: Array, edges: Array) -> tuple[Array, Array]:
    """The step of each bucket's minimum and maximum among (sorted) steps; ties: the first."""
    b = np.searchsorted(edges, steps, side="right") - 1
    lo = np.lexsort((steps, lrs, b))
    hi = np.lexsort((steps, -lrs, b))
    firsts = np.r_[True, b[lo][1:] != b[lo][:-1]]  # the same for hi: both sort by bucket
    return steps[lo][firsts], steps[hi][firsts]


def _walk_extremes(edges: Array, n: int, kw: dict) -> Array:
    """Each bucket's argmin and argmax (first on ties) found chunk by chunk: O(n) time,
    O(SAMPLE_CHUNK + buckets) memory."""
    nb = edges.size - 1
    lo_v, hi_v = np.full(nb, np.inf), np.full(nb, -np.inf)
    lo_i, hi_i = np.zeros(nb, np.int64), np.zeros(nb, np.int64)
    for a in range(0, n, SAMPLE_CHUNK):
        c = min(n, a + SAMPLE_CHUNK)
        lrs = lr_steps(np.arange(a, c, dtype=np.int64), **kw)
        # buckets are contiguous: the ones this chunk touches, and where each starts in it
        b0, b1 = (int(x) for x in np.searchsorted(edges, [a, c - 1], side="right") - 1)
        seg = np.r_[0, edges[b0 + 1 : b1 + 1] - a]
        lens = np.diff(np.r_[seg, c - a])
        for reduce, best_v, best_i, better in (
            (np.minimum, lo_v, lo_i, np.less),
            (np.maximum, hi_v, hi_i, np.greater),
        ):
            v = reduce.reduceat(lrs, seg)
            hits = np.flatnonzero(lrs == np.repeat(v, lens))
            at = hits[np.searchsorted(hits, seg)] + a  # the first step reaching it
            b = np.arange(b0, b1 + 1)
            win = better(v, best_v[b])  # strict: a tie in an earlier chunk stays
            best_v[b[win]], best_i[b[win]] = v[win], at[win]
    return np.unique(np.concatenate([[0, n - 1], lo_i, hi_i]))


class LrSteps:
    """lr of update t for the training loop, as a Python float, computed SAMPLE_CHUNK steps
    at a time on demand (aligned chunks, so a resumed run sees the same values): memory
    stays bounded however long the run is, and a step costs a list lookup."""

    def __init__(
        self, *, lr0: float, schedule: ScheduleSpec, steps_per_epoch: int, epochs: int
    ) -> None:
        self.kw = dict(lr0=lr0, schedule=schedule, steps_per_epoch=steps_per_epoch, epochs=epochs)
        self.n = steps_per_epoch * epochs
        self.start, self.values = -1, []

    def __getitem__(self, t: int) -> float:
        i = t - self.start
        if self.start < 0 or not 0 <= i < len(self.values):
            self.start = t - t % SAMPLE_CHUNK
            stop = min(self.n, self.start + SAMPLE_CHUNK)
            steps = np.arange(self.start, max(stop, t + 1), dtype=np.int64)
            self.values = lr_steps(steps, **self.kw).tolist()  # python floats
            i = t - self.start
        return self.values[i]
