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
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tricks.augment import augment_batch
from tricks.callbacks import Callbacks
from tricks.data import Dataset
from tricks.mixup import mix_batch, smooth_targets, soft_cross_entropy
from tricks.models import build_model
from tricks.regularization import build_optimizer, penalty
from tricks.spec import JobSpec, LRRangeSpec, steps_per_epoch

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
):
    """Run the range test for `spec` (task lr_range_test); a TrainResult with `lr_range` set."""
    from tricks.train import TrainResult, autocast, pick_device, pick_precision

    cb = callbacks if callbacks is not None else Callbacks()
    rs = spec.lr_range or LRRangeSpec()
    tr, reg = spec.training, spec.regularization
    dev = pick_device(device or tr.device)
    precision = pick_precision(tr.precision, dev)
    amp = autocast(dev, precision)

    data = dataset.to(dev)
    X, Y, K, kind = data.x_train, data.y_train, data.num_classes, data.kind
    n = X.shape[0]
    spe, bs = steps_per_epoch(n, tr.batch_size), min(tr.batch_size, n)
    mixing = reg.mixup is not None or (reg.cutmix is not None and kind == "image")
    torch.manual_seed(tr.seed)
    model = build_model(spec.model, tuple(data.input_shape), K, reg.dropout).to(dev)
    opt = build_optimizer(spec.optimizer, model)  # throwaway, like the model
    gen = torch.Generator(device=dev).manual_seed(tr.seed)
    cb.on_start(
        {
            "total_steps": rs.steps,
            "steps_per_epoch": spe,
            "epochs": math.ceil(rs.steps / spe),
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
    model.train()
    perm = torch.randperm(n, generator=gen, device=dev)
    for i in range(rs.steps):
        lr = rs.min_lr * ratio ** (i / (rs.steps - 1))
        for g in opt.param_groups:
            g["lr"] = lr
        b = i % spe
        if b == 0 and i > 0:
            perm = torch.randperm(n, generator=gen, device=dev)
        idx = perm[b * bs : (b + 1) * bs]
        x, y = X[idx], Y[idx]
        if reg.augment is not None:
            x = augment_batch(x, reg.augment, kind, gen)
        if mixing:
            x, target = mix_batch(x, smooth_targets(y, K, reg.label_smoothing), reg, kind, gen)
        with amp or contextlib.nullcontext():
            logits = model(x).float()
        if mixing:
            loss = soft_cross_entropy(logits, target)
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=reg.label_smoothing)
        objective = loss + penalty(model, reg.l1, reg.l2) if (reg.l1 or reg.l2) else loss
        objective.backward()
        if tr.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tr.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.item()  # note: a host sync every step; the stop rule needs each loss
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
            progress = {
                "epoch": i // spe,
                "epochs": math.ceil(rs.steps / spe),
                "step": i + 1,
                "total_steps": rs.steps,
                "fraction": (i + 1) / rs.steps,
                "eta_seconds": secs / (i + 1) * (rs.steps - i - 1),
                "samples_per_second": (i + 1) * bs / secs if secs > 0 else 0.0,
            }
            cb.on_log(i, {"train_loss": value, "lr": lr, "smoothed_loss": s}, progress)
            if cb.should_stop() is not None:
                return TrainResult(status="cancelled", steps=i + 1, history=history)
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
