"""What a schedule given in epochs becomes in optimizer steps, and the roundings refused.

The spec speaks in epochs (warmup.epochs, cosine_restarts.t0_epochs, step_epochs,
milestones); the run counts optimizer steps, and only the plan knows steps per epoch.
`realised` reports the step counts the run will really use (the preview and the job plan
show them); `check_realised` refuses, with a SpecError naming the field, the realised
count and the steps per epoch, a length that rounds to nothing:

- warmup.epochs · steps_per_epoch rounding to 0 steps (no warm-up at all) or to the
  whole run;
- cosine_restarts.t0_epochs rounding to 0 steps (per batch), or a fractional one per
  epoch, where the lr changes once per epoch (0.4 would restart every epoch: a constant lr).

No torch (numpy only): the API imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tricks.schedules import _onecycle, _units, restart_period, warmup_steps
from tricks.spec import ScheduleSpec, SpecError

MAX_LISTED = 64  # steps listed (boundaries, restarts); the counts say how many there are


def check_realised(schedule: ScheduleSpec, *, steps_per_epoch: int, epochs: int) -> None:
    """SpecError (loc under "schedule") for a length that rounds to nothing in steps."""
    spe, total, w, d = steps_per_epoch, steps_per_epoch * epochs, schedule.warmup, schedule.decay
    if w is not None and w.epochs and schedule.per == "batch":  # epochs 0: no warm-up, asked for
        m = warmup_steps(schedule, spe)
        if m == 0:
            raise SpecError(
                ("schedule", "warmup", "epochs"),
                f"warmup.epochs ({w.epochs:g}) × {spe} steps per epoch rounds to 0 steps: no "
                f"warm-up at all; give at least {1 / spe:.3g} epochs (1 step) or warmup.steps",
            )
        if m >= total:
            raise SpecError(
                ("schedule", "warmup", "epochs"),
                f"warmup.epochs ({w.epochs:g}) × {spe} steps per epoch rounds to {m} steps, "
                f"the whole run ({total} steps): shorten the warm-up",
            )
    if d.kind == "cosine_restarts":
        if schedule.per == "epoch" and d.t0_epochs != int(d.t0_epochs):
            raise SpecError(
                ("schedule", "decay", "t0_epochs"),
                f"schedule.per is 'epoch': the lr changes once per epoch, so t0_epochs "
                f"({d.t0_epochs:g}) must be a whole number of epochs (it would be "
                f"{restart_period(d, 1)}, i.e. every {restart_period(d, 1) * spe} steps); "
                f"use per 'batch' for cycles shorter than an epoch",
            )
        if schedule.per == "batch" and round(d.t0_epochs * spe) == 0:
            raise SpecError(
                ("schedule", "decay", "t0_epochs"),
                f"t0_epochs ({d.t0_epochs:g}) × {spe} steps per epoch rounds to 0 steps: the "
                f"lr would restart every step; give at least {1 / spe:.3g} epochs",
            )


def realised(schedule: ScheduleSpec, *, steps_per_epoch: int, epochs: int) -> dict[str, Any]:
    """The step counts of this schedule for this run, all in optimizer steps (0-based)."""
    spe = steps_per_epoch
    m, total_units, upe = _units(schedule, spe, epochs)
    unit = spe if schedule.per == "epoch" else 1  # optimizer steps per schedule unit
    d = schedule.decay
    out: dict[str, Any] = {
        "per": schedule.per,
        "steps_per_epoch": spe,
        "total_steps": spe * epochs,
        "warmup_steps": m * unit,
        "decay_steps": (total_units - m) * unit,
    }
    if d.kind in ("step", "multistep"):
        at = (
            list(range(d.every(epochs), epochs, d.every(epochs)))
            if d.kind == "step"
            else d.at(epochs)
        )
        out["decay_epochs"] = at[:MAX_LISTED]
        out["decay_boundaries"] = [e * spe for e in at[:MAX_LISTED]]
        out["decays"] = len(at)
    elif d.kind == "cosine_restarts":
        t0, T = restart_period(d, upe), total_units - m
        starts: list[int] = []
        if d.t_mult == 1:
            cycles = -(-T // t0)
            starts = [m + k * t0 for k in range(min(cycles, MAX_LISTED))]
        else:
            start, length, cycles = 0, t0, 0
            while start < T:
                if cycles < MAX_LISTED:
                    starts.append(m + start)
                start, length, cycles = start + length, length * d.t_mult, cycles + 1
        out["first_cycle_steps"] = t0 * unit
        out["restart_steps"] = [s * unit for s in starts]
        out["cycles"] = cycles
    elif d.kind == "onecycle":
        # the highest lr: one of the two steps around torch's fractional phase end
        peak_at = float(d.pct_start * total_units) - 1  # as schedules._onecycle
        t = np.array([max(0, int(peak_at)), min(total_units - 1, max(0, int(peak_at)) + 1)])
        lrs = _onecycle(d, 1.0, t, total_units)
        out["peak_step"] = int(t[int(np.argmax(lrs))]) * unit
    elif d.kind == "wsd":
        T = total_units - m
        n_decay = max(1, int(round(d.decay_fraction * T)))  # as schedules._wsd
        out["cooldown_start_step"] = (m + T - n_decay) * unit
    return out
