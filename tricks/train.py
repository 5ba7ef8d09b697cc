"""The training loop: read it top to bottom.

One step, always in this order (nanoGPT / airbench style):
    set lr → augment → mix → forward → loss (+ penalty) → backward → clip → step → zero_grad
The data lives on the device and batches are slices of a seeded `torch.randperm`
(the last partial batch is dropped). Batches are gathered, augmented and mixed a
chunk at a time (the batches up to the next log point, at most CHUNK_ELEMS
numbers): the same per-sample draws and ops, with the fixed cost of each op paid
once per chunk instead of once per step; a step then takes its slice. The lr comes from `tricks.schedules`,
computed once for every step. Nothing in a step talks to the host: the loss sum
and the predictions stay on the device and are read once per log point.

Log points are every `training.log_every` updates and the last update of every
epoch, so no logging interval straddles two epochs. At a log point the loop
syncs, records `lr`/`train_loss`/`train_acc` at that step, calls `on_log`,
checks for divergence and the time budget, and polls `should_stop`.

Steps follow INTERNALS.md: `step` is the 0-based index of an optimizer update;
a value logged at step t covers the updates since the previous log point up to
and including t; per-epoch metrics sit at the epoch's last update. Epochs are
0-based everywhere (callbacks, `best`, progress).

Exact resume: a checkpoint holds the model, optimizer, scaler, every RNG state,
the epoch's permutation, the seed of its mixing plan and the next batch index, the history and the
early-stopping state. Checkpoints are only written at log points, where nothing
is pending on the device, so a resumed run on the CPU reproduces the
uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tricks import checkpoint as ckpt
from tricks.augment import augment_batch
from tricks.callbacks import Callbacks
from tricks.data import Dataset
from tricks.evaluate import evaluate
from tricks.mixup import draw_seed, mix_batches, plan_lambdas, plan_mixing, smooth_targets
from tricks.models import build_model
from tricks.regularization import build_optimizer, penalty
from tricks.schedules import lr_curve
from tricks.spec import JobSpec, steps_per_epoch

EVAL_BATCH = 1024
LOGIT_BUFFER = 1 << 22  # keep a log interval's logits when they are at most 4M numbers
CHUNK_ELEMS = 1 << 16  # inputs gathered (augmented, mixed) at once: batches of at most 64k numbers


@dataclass
class TrainResult:
    status: str  # "succeeded" | "cancelled" | "preempted" | "failed"
    error: dict[str, str] | None = None  # {type, message}
    metrics: dict[str, float] = field(default_factory=dict)  # latest value of every metric
    best: dict[str, Any] = field(default_factory=lambda: {"val_acc": None, "epoch": None})
    steps: int = 0  # optimizer updates completed
    epochs_run: int = 0  # epochs completed
    history: dict[str, dict[str, list]] = field(default_factory=dict)
    model_state: dict[str, torch.Tensor] | None = None  # on the CPU
    stop_reason: str | None = None  # "early_stopping" when it ended training early
    checkpoint: str | None = None  # the last checkpoint written, if any
    lr_range: dict[str, Any] | None = None  # task lr_range_test: tricks.lr_find's result


def pick_device(name: str) -> torch.device:
    """'auto' takes CUDA when there is one."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def pick_precision(precision: str, device: torch.device) -> str:
    """Autocast only on CUDA: 'auto' is bf16 where supported; on the CPU always fp32."""
    if device.type != "cuda":
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> torch.autocast | None:
    """The autocast context for bf16/fp16; None for fp32 (the loop skips the `with`)."""
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
    return None


def _record(history: dict, name: str, step: int, value: float) -> None:
    series = history.setdefault(name, {"step": [], "value": []})
    series["step"].append(step)
    series["value"].append(value)


def _improved(metric: str, value: float, best: float | None, min_delta: float) -> bool:
    if best is None:
        return True
    return value > best + min_delta if metric == "val_acc" else value < best - min_delta


def train(
    spec: JobSpec,
    dataset: Dataset,
    callbacks: Callbacks | None = None,
    *,
    checkpoint_dir: Path | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train `spec` on `dataset`; resume from the newest checkpoint in `checkpoint_dir` if any."""
    if spec.task == "lr_range_test":
        from tricks.lr_find import lr_range_test

        return lr_range_test(spec, dataset, callbacks, device=device)
    cb = callbacks if callbacks is not None else Callbacks()
    tr, reg = spec.training, spec.regularization
    dev = pick_device(device or tr.device)
    precision = pick_precision(tr.precision, dev)
    amp, cast = autocast(dev, precision), precision != "fp32"  # amp is None in fp32

    # ---- data: moved to the device once; batches are slices of a permutation
    data = dataset.to(dev)
    X, Y, K, kind = data.x_train, data.y_train, data.num_classes, data.kind
    n_train = X.shape[0]
    spe = steps_per_epoch(n_train, tr.batch_size)
    bs = min(tr.batch_size, n_train)  # only when one partial batch is all there is
    epochs, total_steps = tr.epochs, spe * tr.epochs
    lrs = lr_curve(
        lr0=spec.optimizer.lr, schedule=spec.schedule, steps_per_epoch=spe, epochs=epochs
    ).tolist()  # python floats: setting the lr costs no tensor op
    mixing = reg.mixup is not None or (reg.cutmix is not None and kind == "image")
    eps, l1, l2, clip = reg.label_smoothing, reg.l1, reg.l2, tr.grad_clip
    penalize = bool(l1 or l2)
    log_every = tr.log_every
    # batches are gathered, augmented and mixed a chunk at a time (up to the next log point):
    # the per-op cost is paid once per chunk, not per step
    chunk_batches = max(1, CHUNK_ELEMS // (bs * math.prod(X.shape[1:])))
    soft = mixing or bool(eps)  # the loss takes soft targets (rows of `smooth`, mixed)

    # ---- model, optimizer and every source of randomness
    torch.manual_seed(tr.seed)  # model init; dropout then draws from the global RNG
    model = build_model(spec.model, tuple(data.input_shape), K, reg.dropout).to(dev)
    opt = build_optimizer(spec.optimizer, model)
    params = [p for g in opt.param_groups for p in g["params"]]
    weights = [p for p in params if p.ndim >= 2]  # what l1/l2 penalize (regularization.penalty)
    smooth = smooth_targets(torch.arange(K, device=dev), K, eps)  # row k: (1−ε)·onehot(k) + ε/K
    scaler = torch.amp.GradScaler(dev.type) if precision == "fp16" else None
    gen = torch.Generator(device=dev).manual_seed(tr.seed)  # order, augment, mix

    # ---- loop state (all of it goes into a checkpoint)
    epoch, batch, step = 0, 0, 0  # next epoch, next batch in it, updates completed
    perm: torch.Tensor | None = None
    mix_seed: int | None = None  # seeds the epoch's mixup/CutMix plan (tricks.mixup)
    ep_loss, ep_correct = 0.0, 0  # sums over the epoch's log intervals, on the host
    history: dict[str, dict[str, list]] = {}
    metrics: dict[str, float] = {}
    best: dict[str, Any] = {"val_acc": None, "epoch": None}
    early = {"best": None, "bad_epochs": 0}
    stop_reason: str | None = None
    elapsed_before = 0.0  # training seconds spent before this process resumed
    last_ckpt: Path | None = None

    found = ckpt.load_latest(checkpoint_dir)
    if found is not None:
        last_ckpt, s = found
        model.load_state_dict(s["model"])
        opt.load_state_dict(s["optimizer"])
        if scaler is not None and s["scaler"]:
            scaler.load_state_dict(s["scaler"])
        ckpt.set_rng_state(s["rng"], gen)
        epoch, batch, step = s["epoch"], s["batch"], s["step"]
        perm = s["perm"].to(dev) if s["perm"] is not None else None
        mix_seed = s.get("mix_seed")
        ep_loss, ep_correct = s["ep_loss"], s["ep_correct"]
        history, metrics, best, early = s["history"], s["metrics"], s["best"], s["early"]
        stop_reason, elapsed_before = s["stop_reason"], s["elapsed_s"]
    resumed_from = step if found is not None else None

    def save(path_dir: Path) -> Path:
        if last_ckpt is not None and last_ckpt == ckpt.checkpoint_path(path_dir, step):
            return last_ckpt  # a stop request right after an epoch-end checkpoint
        state = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else {},
            "rng": ckpt.rng_state(gen),
            "epoch": epoch,
            "batch": batch,
            "step": step,
            "perm": perm.cpu() if perm is not None else None,
            "mix_seed": mix_seed,
            "ep_loss": ep_loss,
            "ep_correct": ep_correct,
            "history": history,
            "metrics": metrics,
            "best": best,
            "early": early,
            "stop_reason": stop_reason,
            "elapsed_s": elapsed_before + time.perf_counter() - t_start,
            "spec": spec.model_dump_json(),
        }
        path = ckpt.save_checkpoint(state, path_dir, step)
        cb.on_checkpoint(path, epoch, step)
        return path

    def result(status: str, error: dict | None = None) -> TrainResult:
        return TrainResult(
            status=status,
            error=error,
            metrics=dict(metrics),
            best=dict(best),
            steps=step,
            epochs_run=epoch,
            history=history,
            model_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            stop_reason=stop_reason,
            checkpoint=str(last_ckpt) if last_ckpt is not None else None,
        )

    def progress() -> dict[str, Any]:
        secs = time.perf_counter() - t_start
        done = step - (resumed_from or 0)  # updates made by this process
        rate = done / secs if secs > 0 else 0.0
        return {
            "epoch": min(epoch, epochs - 1),
            "epochs": epochs,
            "step": step,
            "total_steps": total_steps,
            "fraction": step / total_steps,
            "eta_seconds": (total_steps - step) / rate if rate > 0 else None,
            "samples_per_second": rate * bs,
        }

    cb.on_start(
        {
            "total_steps": total_steps,
            "steps_per_epoch": spe,
            "epochs": epochs,
            "device": str(dev),
            "precision": precision,
            "resumed_from_step": resumed_from,
        }
    )
    t_start = time.perf_counter()
    if stop_reason is not None:  # the checkpoint is of a finished (early-stopped) run
        return result("succeeded")

    # per-interval accumulators on the device: the loss sum, and each step's logits kept
    # by reference (no tensor op per step; argmax waits for the log point) or, when they
    # would take much memory, each step's predictions
    rows = min(log_every, spe)
    loss_sum = torch.zeros((), device=dev)
    keep_logits = rows * bs * K <= LOGIT_BUFFER
    kept: list[torch.Tensor] = []
    labels = torch.empty(rows, bs, dtype=torch.long, device=dev) if mixing else None
    row = 0  # steps since the last log point (entries of `kept`, rows of `labels`)
    # the current chunk: its inputs (and soft targets), its length and the next batch in it.
    # A chunk never crosses a log point, so a checkpoint (always at a log point) starts one.
    xc, tc, n_chunk, r = X, None, 0, 0
    groups = opt.param_groups

    try:
        while epoch < epochs:
            if perm is None:
                perm = torch.randperm(n_train, generator=gen, device=dev)
            if mixing:  # the epoch's λs, coins and boxes: one host sync per epoch, not per step
                if mix_seed is None:
                    mix_seed = draw_seed(gen)
                hw = tuple(X.shape[-2:]) if kind == "image" else None
                plan = plan_mixing(reg, kind, hw, spe, np.random.default_rng(mix_seed))
                lams = plan_lambdas(plan, dev)
            Yp = Y[perm]  # labels in batch order: a batch's labels are a slice, not a gather
            model.train()
            while batch < spe:
                # -------- one optimizer update, index `step`; no host sync in here
                if r == n_chunk:  # the next chunk: its batches up to the next log point at most
                    n_chunk = min(chunk_batches, log_every - step % log_every, spe - batch)
                    lo, hi, r = batch * bs, (batch + n_chunk) * bs, 0
                    xc = X[perm[lo:hi]]
                    if reg.augment is not None:
                        xc = augment_batch(xc, reg.augment, kind, gen)
                    if mixing:
                        xc, tc = mix_batches(
                            xc,
                            smooth[Yp[lo:hi]],
                            plan[batch : batch + n_chunk],
                            lams[batch : batch + n_chunk],
                            gen,
                        )
                        # the majority label of each mixed target: what train_acc counts
                        torch.argmax(tc.view(n_chunk, bs, K), 2, out=labels[row : row + n_chunk])
                    elif eps:  # rows of smooth_targets; faster on the CPU than label_smoothing=eps
                        tc = smooth[Yp[lo:hi]]
                lr = lrs[step]
                for g in groups:
                    g["lr"] = lr
                x = xc[r * bs : (r + 1) * bs]
                if amp is None:
                    logits = model(x)
                else:
                    with amp:
                        logits = model(x)
                if cast:  # autocast: the loss in fp32
                    logits = logits.float()
                if soft:  # soft targets: mean of −Σ target·log_softmax(logits)
                    loss = F.cross_entropy(logits, tc[r * bs : (r + 1) * bs])
                else:
                    loss = F.cross_entropy(logits, Yp[batch * bs : (batch + 1) * bs])
                if penalize and scaler is not None:
                    scaler.scale(loss + penalty(model, l1, l2)).backward()
                elif scaler is not None:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
                    if penalize:  # d/dw of l1·Σ|w| + l2·Σw², added in place of autograd
                        _add_penalty_grads(weights, l1, l2)
                if clip is not None:
                    if scaler is not None:
                        scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(params, clip)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                opt.zero_grad(set_to_none=True)
                loss_sum += loss.detach()
                kept.append(logits.detach() if keep_logits else logits.detach().argmax(dim=1))
                row += 1
                r += 1
                batch += 1
                step += 1
                if step % log_every and batch < spe:
                    continue

                # -------- log point: the one host sync of this interval
                t = step - 1
                lo = (batch - row) * bs
                truth = labels[:row] if mixing else Yp[lo : batch * bs].view(row, bs)
                preds = torch.stack(kept)
                correct = ((preds.argmax(dim=2) if keep_logits else preds) == truth).sum()
                kept.clear()
                interval_loss, n_correct = loss_sum.item(), int(correct)  # note: sync point
                loss_sum.zero_()
                train_loss, train_acc = interval_loss / row, n_correct / (row * bs)
                ep_loss, ep_correct = ep_loss + interval_loss, ep_correct + n_correct
                row = 0
                _record(history, "lr", t, lr)
                _record(history, "train_loss", t, train_loss)
                _record(history, "train_acc", t, train_acc)
                metrics.update(lr=lr, train_loss=train_loss, train_acc=train_acc)
                cb.on_log(
                    t, {"train_loss": train_loss, "lr": lr, "train_acc": train_acc}, progress()
                )
                if not math.isfinite(train_loss):
                    return result("failed", _diverged(t, lr))
                if batch == spe:
                    break  # stop requests and the time budget are checked after the epoch
                stop = _check_stop(cb, tr.time_limit_s, elapsed_before, t_start)
                if stop is not None:
                    if stop[0] != "cancelled" and checkpoint_dir is not None:
                        last_ckpt = save(checkpoint_dir)
                    return result(*stop)

            # -------- end of epoch: evaluate, early stopping, checkpoint
            t = step - 1
            val = evaluate(
                model, data.x_val, data.y_val, EVAL_BATCH, amp or contextlib.nullcontext()
            )
            ep = {"train_loss": ep_loss / spe, "train_acc": ep_correct / (spe * bs), **val}
            for name in ("val_loss", "val_acc", "val_ece"):
                _record(history, name, t, ep[name])
            _record(history, "epoch_train_loss", t, ep["train_loss"])
            _record(history, "epoch_train_acc", t, ep["train_acc"])
            metrics.update(val)
            if best["val_acc"] is None or val["val_acc"] > best["val_acc"]:
                best = {"val_acc": val["val_acc"], "epoch": epoch}
            es = tr.early_stopping
            if es is not None:
                v = ep[es.metric]
                if _improved(es.metric, v, early["best"], es.min_delta):
                    early = {"best": v, "bad_epochs": 0}
                else:
                    early = {"best": early["best"], "bad_epochs": early["bad_epochs"] + 1}
            cb.on_epoch_end(epoch, t, ep, progress())
            if not (math.isfinite(ep["train_loss"]) and math.isfinite(val["val_loss"])):
                return result("failed", _diverged(t, lrs[t]))
            finished_epoch = epoch
            epoch, batch, perm, ep_loss, ep_correct = epoch + 1, 0, None, 0.0, 0
            mix_seed = None
            if es is not None and early["bad_epochs"] >= es.patience:
                stop_reason = "early_stopping"
            last = epoch == epochs or stop_reason is not None
            if checkpoint_dir is not None and (
                (finished_epoch + 1) % tr.checkpoint_every == 0 or last
            ):
                last_ckpt = save(checkpoint_dir)
                if tr.keep_checkpoints == "epochs":  # fork points (tricks.fork)
                    ckpt.pin_epoch(last_ckpt, epoch)
            if stop_reason is not None:
                break
            if not last:
                stop = _check_stop(cb, tr.time_limit_s, elapsed_before, t_start)
                if stop is not None:
                    if stop[0] != "cancelled" and checkpoint_dir is not None:
                        last_ckpt = save(checkpoint_dir)
                    return result(*stop)
    except torch.OutOfMemoryError as exc:
        opt.zero_grad(set_to_none=True)
        return result(
            "failed",
            {
                "type": "oom",
                "message": f"out of memory at step {step} on {dev} ({str(exc).splitlines()[0]}): "
                f"lower training.batch_size or the model size",
            },
        )
    return result("succeeded")


def _add_penalty_grads(weights: list[torch.Tensor], l1: float, l2: float) -> None:
    """grad += l1·sign(w) + 2·l2·w: the gradient of regularization.penalty, without its graph.

    Same values as backpropagating `loss + penalty(model, l1, l2)` (torch's |w|
    has subgradient 0 at 0, as sign does) at a fraction of the cost: a few
    fused foreach ops instead of a sum and a backward node per weight.
    """
    with torch.no_grad():
        grads = []
        for w in weights:
            if w.grad is None:  # a weight the loss did not use still feels the penalty
                w.grad = torch.zeros_like(w)
            grads.append(w.grad)
        if l1:
            torch._foreach_add_(grads, torch._foreach_sign(weights), alpha=l1)
        if l2:
            torch._foreach_add_(grads, weights, alpha=2 * l2)


def _diverged(step: int, lr: float) -> dict[str, str]:
    return {"type": "diverged", "message": f"diverged at step {step} (lr = {lr:.6g})"}


def _check_stop(
    cb: Callbacks, time_limit_s: float | None, elapsed_before: float, t_start: float
) -> tuple[str, dict | None] | None:
    """(status, error) when training must stop here: cancel, preempt or the time budget."""
    req = cb.should_stop()
    if req == "cancel":
        return "cancelled", None
    if req == "preempt":
        return "preempted", None
    if time_limit_s is not None:
        spent = elapsed_before + time.perf_counter() - t_start
        if spent > time_limit_s:
            return "failed", {
                "type": "time_limit",
                "message": f"time limit of {time_limit_s:g} s reached after {spent:.1f} s: "
                "raise training.time_limit_s or train fewer epochs (it resumes from its checkpoint)",
            }
    return None
