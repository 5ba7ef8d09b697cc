"""LR range test: Smith, "Cyclical Learning Rates for Training Neural Networks"
(WACV 2017, arXiv:1506.01186), §3.3, in the form of fastai's `lr_find`.

Train a throwaway copy of the model for `steps` updates while the lr grows
exponentially from min_lr to max_lr, lr_i = min_lr·(max_lr/min_lr)^(i/(steps−1)).
The loss is smoothed with an exponential moving average with bias correction,
s_i = EMA_i / (1 − β^(i+1)), and the test stops once s_i > diverge_factor × the
best s so far, or the loss is not finite (stop_reason "diverged"). β scales with
the length of the test, β = 1 − 1/τ with τ = steps/16 (at least 2 steps), unless
`lr_range.smoothing` sets it: fastai's fixed 0.98 averages over ~50 steps, half of
a 100-step test, and that lag drags any rule read off it towards divergence
(0.433 on examples/lr_range_test.json, where training at it reached 64.6% and 0.1
reached 97.8%).

Suggested lr (the rule is returned with it): the steepest descent of the loss
against log10(lr) on a zero-lag (centred) moving average of the raw losses, over a
window of steps/8 points (odd, at least 5): the lr where the loss falls fastest,
i.e. the most negative d s / d log10(lr). Only points before the centred curve's
minimum and whose whole window lies inside the curve count, and the diverging tail
(raw losses above diverge_factor × the best EMA so far) is cut off first, so the
explosion neither leaks into the window nor bends the edge. When fewer than 2 such
points exist, it falls back to (lr at the minimum) / 10. A test in
tests/tricks/test_lr_suggestion.py trains at the suggestion and around it.

Each update is the training loop's own (`tricks.step.Stepper`: the same
augmentation, mixing, label-smoothing targets, penalties, clipping and fp16 grad
scaling, the on-device conversion of stored dtypes and channels_last on CUDA),
on a throwaway model and optimizer, read back after every step since the stop
rule needs each loss. It runs uncompiled whatever `training.compile` says: a
test of ~100 steps would spend most of its time compiling. A "cancel" ends the test as "cancelled", a
"preempt" as "preempted" (the worker re-queues it; having no checkpoint, it
starts again from step 0; being seeded, it draws the same curve on the CPU).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from tricks.callbacks import Callbacks, progress
from tricks.data import Dataset
from tricks.device import (
    autocast,
    grad_scaler,
    pick_device,
    pick_precision,
    place_model,
    setup_backend,
)
from tricks.models import build_model
from tricks.regularization import build_optimizer
from tricks.result import TrainResult, check_stop
from tricks.spec import JobSpec, LRRangeSpec, steps_per_epoch
from tricks.step import Stepper

RULE_STEEP = (
    "steepest descent of the loss vs log10(lr), centred moving average over {w} steps, "
    "before its minimum"
)
RULE_MIN = "lr at the minimum of the loss (centred moving average over {w} steps) / 10"


def ema_beta(rs: LRRangeSpec) -> float:
    """β of the live EMA: lr_range.smoothing, or 1 − 1/τ with τ = steps/16 (at least 2)."""
    if rs.smoothing is not None:
        return rs.smoothing
    return 1.0 - 1.0 / max(2.0, rs.steps / 16)


def suggestion_window(steps: int) -> int:
    """Points in the centred moving average: steps/8, odd, at least 5."""
    return max(5, int(round(steps / 8)) | 1)


def centred_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Moving average over a centred window of w points (fewer at the ends): no lag."""
    n, h = x.size, w // 2
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(n)
    lo, hi = np.maximum(0, i - h), np.minimum(n, i + h + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def cut_divergence(losses: np.ndarray, ema: np.ndarray, diverge_factor: float) -> int:
    """How many leading points to keep: up to the first raw loss above
    diverge_factor × the best EMA so far (the explosion), or the first non-finite one."""
    bad = ~np.isfinite(losses) | (losses > diverge_factor * np.minimum.accumulate(ema))
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else int(losses.size)


def suggest_lr(
    lrs: list[float],
    losses: list[float],
    smoothed: list[float],
    *,
    steps: int,
    min_lr: float,
    diverge_factor: float = 4.0,
) -> tuple[float, str]:
    """(suggested lr, rule) from an lr range test curve: `losses` raw, `smoothed` the
    live EMA, `steps` the planned length of the test (it sets the window)."""
    lr = np.asarray(lrs, dtype=np.float64)
    raw = np.asarray(losses, dtype=np.float64)
    k = max(1, cut_divergence(raw, np.asarray(smoothed, dtype=np.float64), diverge_factor))
    lr, raw = lr[:k], raw[:k]
    w = suggestion_window(steps)
    s = centred_mean(raw, w)
    i_min, h = int(np.argmin(s)), w // 2
    lo, hi = h, min(i_min, k - 1 - h)  # candidates: before the minimum, whole window inside
    if hi - lo >= 1:
        grad = np.gradient(s, np.log10(lr))
        return float(lr[lo + int(np.argmin(grad[lo : hi + 1]))]), RULE_STEEP.format(w=w)
    return max(float(lr[i_min]) / 10.0, min_lr), RULE_MIN.format(w=w)


def lr_range_test(
    spec: JobSpec,
    dataset: Dataset,
    callbacks: Callbacks | None = None,
    *,
    device: str | None = None,
) -> TrainResult:
    """Run the range test for `spec` (task lr_range_test); a TrainResult with `lr_range` set."""
    cb = callbacks if callbacks is not None else Callbacks()
    rs = spec.lr_range or LRRangeSpec()
    tr = spec.training
    dev = pick_device(device or tr.device)
    precision = pick_precision(tr.precision, dev)

    setup_backend(dev)
    data = dataset.to(dev)  # in its stored dtype, made float a chunk at a time
    n = len(data.train)
    spe, bs = steps_per_epoch(n, tr.batch_size), min(tr.batch_size, n)
    epochs = math.ceil(rs.steps / spe)
    torch.manual_seed(tr.seed)
    dropout = spec.regularization.dropout
    model = build_model(spec.model, tuple(data.input_shape), data.num_classes, dropout)
    model = place_model(model, dev)  # channels_last on CUDA for 2-D convolutions
    opt = build_optimizer(spec.optimizer, model)  # throwaway, like the model
    gen = torch.Generator(device=dev).manual_seed(tr.seed)
    scaler, amp = grad_scaler(dev, precision), autocast(dev, precision)
    stepper = Stepper(spec, data, model, opt, scaler, gen, amp, read_every=1)
    cb.on_start(
        {
            "total_steps": rs.steps,
            "steps_per_epoch": spe,
            "epochs": epochs,
            "device": str(dev),
            "precision": precision,
            "resumed_from_step": None,
        }
    )

    ratio = rs.max_lr / rs.min_lr
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    history: dict[str, dict[str, list]] = {
        k: {"step": [], "value": []} for k in ("lr", "train_loss", "smoothed_loss")
    }
    beta = ema_beta(rs)
    avg, best, diverged_at, done, logged = 0.0, math.inf, None, 0, 0
    t0 = time.perf_counter()
    for i in range(rs.steps):
        lr = rs.min_lr * ratio ** (i / (rs.steps - 1))
        b = i % spe
        if b == 0:
            stepper.start_epoch(None, None)  # a fresh permutation (and mixing plan)
        stepper.step(lr, i, b)
        value, _, _ = stepper.read()  # note: a host sync every step; the stop rule needs each loss
        done = i + 1
        if not math.isfinite(value):
            diverged_at = lr
            break
        avg = beta * avg + (1 - beta) * value
        s = avg / (1 - beta ** (i + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(s)
        for name, v in (("lr", lr), ("train_loss", value), ("smoothed_loss", s)):
            history[name]["step"].append(i)
            history[name]["value"].append(v)
        if (i + 1) % tr.log_every == 0:
            secs = time.perf_counter() - t0
            at = progress(i + 1, rs.steps, i // spe, epochs, i + 1, secs, bs)
            cb.on_log(i, {"train_loss": value, "lr": lr, "smoothed_loss": s}, at)
            logged = done
            # no time budget: the test is `lr_range.steps` long and has no checkpoint to resume
            stop = check_stop(cb, None, 0.0, t0)
            if stop is not None:
                return TrainResult(status=stop[0], steps=i + 1, history=history)
        best = min(best, s)
        if s > rs.diverge_factor * best:
            diverged_at = lr
            break

    if done > logged:  # the last steps (a stop between log points): progress says where it ended
        secs = time.perf_counter() - t0
        at = progress(done, rs.steps, (done - 1) // spe, epochs, done, secs, bs)
        last = {"lr": lr, "train_loss": value}
        if smoothed and math.isfinite(value):
            last["smoothed_loss"] = smoothed[-1]
        cb.on_log(done - 1, last, at)
    if not lrs:  # the very first step blew up
        suggested, rule = rs.min_lr, "the first step diverged: min_lr"
    else:
        suggested, rule = suggest_lr(
            lrs,
            losses,
            smoothed,
            steps=rs.steps,
            min_lr=rs.min_lr,
            diverge_factor=rs.diverge_factor,
        )
    out: dict[str, Any] = {
        "lrs": lrs,
        "losses": losses,
        "smoothed": smoothed,
        "suggested_lr": suggested,
        "rule": rule,
        "stopped_early": diverged_at is not None,
        "diverged_at_lr": diverged_at,
    }
    return TrainResult(
        status="succeeded",
        metrics={"suggested_lr": suggested},
        steps=done,
        history=history,
        stop_reason="diverged" if diverged_at is not None else None,
        lr_range=out,
    )
