"""LR range test: Smith, "Cyclical Learning Rates for Training Neural Networks"
(WACV 2017, arXiv:1506.01186), §3.3, in the form of fastai's `lr_find`.

Train a throwaway copy of the model for `steps` updates while the lr grows
exponentially from min_lr to max_lr, lr_i = min_lr·(max_lr/min_lr)^(i/(steps−1)).
The loss is smoothed with an exponential moving average with bias correction,
s_i = EMA_i / (1 − β^(i+1)), and the test stops once s_i > diverge_factor × the
best s so far, or the loss is not finite.

Suggested lr (the rule is returned with it): the lr where the smoothed loss
falls fastest, i.e. the most negative d s / d log10(lr), looking only at points
before the smoothed loss's minimum (fastai's "steep" suggestion). When fewer
than 3 such points exist, it falls back to (lr at the minimum) / 10.

Each update is the training loop's own (`tricks.step.Stepper`: the same
augmentation, mixing, label-smoothing targets, penalties, clipping and fp16 grad
scaling), on a throwaway model and optimizer, read back after every step since
the stop rule needs each loss. A "cancel" ends the test as "cancelled", a
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
from tricks.device import autocast, grad_scaler, pick_device, pick_precision
from tricks.models import build_model
from tricks.regularization import build_optimizer
from tricks.result import TrainResult, check_stop
from tricks.spec import JobSpec, LRRangeSpec, steps_per_epoch
from tricks.step import Stepper

RULE_STEEP = "steepest descent of the smoothed loss vs log10(lr), before its minimum"
RULE_MIN = "lr at the minimum of the smoothed loss / 10"


def suggest_lr(lrs: list[float], smoothed: list[float], min_lr: float) -> tuple[float, str]:
    """(suggested lr, rule) from an lr range test curve."""
    lr = np.asarray(lrs, dtype=np.float64)
    s = np.asarray(smoothed, dtype=np.float64)
    i_min = int(np.argmin(s))
    if i_min >= 2:
        grad = np.gradient(s[: i_min + 1], np.log10(lr[: i_min + 1]))
        return float(lr[int(np.argmin(grad))]), RULE_STEEP
    return max(float(lr[i_min]) / 10.0, min_lr), RULE_MIN


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

    data = dataset.to(dev)
    n = data.x_train.shape[0]
    spe, bs = steps_per_epoch(n, tr.batch_size), min(tr.batch_size, n)
    epochs = math.ceil(rs.steps / spe)
    torch.manual_seed(tr.seed)
    dropout = spec.regularization.dropout
    model = build_model(spec.model, tuple(data.input_shape), data.num_classes, dropout).to(dev)
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
    avg, best, diverged_at = 0.0, math.inf, None
    t0 = time.perf_counter()
    for i in range(rs.steps):
        lr = rs.min_lr * ratio ** (i / (rs.steps - 1))
        b = i % spe
        if b == 0:
            stepper.start_epoch(None, None)  # a fresh permutation (and mixing plan)
        stepper.step(lr, i, b)
        value, _, _ = stepper.read()  # note: a host sync every step; the stop rule needs each loss
        if not math.isfinite(value):
            diverged_at = lr
            break
        avg = rs.smoothing * avg + (1 - rs.smoothing) * value
        s = avg / (1 - rs.smoothing ** (i + 1))
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
            # no time budget: the test is `lr_range.steps` long and has no checkpoint to resume
            stop = check_stop(cb, None, 0.0, t0)
            if stop is not None:
                return TrainResult(status=stop[0], steps=i + 1, history=history)
        best = min(best, s)
        if s > rs.diverge_factor * best:
            diverged_at = lr
            break

    if not lrs:  # the very first step blew up
        suggested, rule = rs.min_lr, "the first step diverged: min_lr"
    else:
        suggested, rule = suggest_lr(lrs, smoothed, rs.min_lr)
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
        steps=len(lrs) + (diverged_at is not None),
        history=history,
        lr_range=out,
    )
