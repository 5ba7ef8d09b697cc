"""The training loop: read it top to bottom.

`train()` sets up the data (moved to the device once), the model, optimizer,
grad scaler and one seeded torch Generator (batch order, augmentation,
mixing), resumes from the newest checkpoint if there is one, then runs epochs
of updates. Each update is `tricks.step.Stepper.step`, always in this order
(nanoGPT / airbench style):
    set lr → augment → mix → forward → loss (+ penalty) → backward → clip → step → zero_grad
with batches gathered, augmented and mixed a chunk at a time (see tricks.step).
The lr of every step comes from `tricks.schedules` (LrSteps: a chunk of steps at a time).
Nothing in a step talks to the host. A spec with task lr_range_test goes to
`tricks.lr_find.lr_range_test` instead, which makes the same updates.

Log points are every `training.log_every` updates and the last update of every
epoch, so no logging interval straddles two epochs. At a log point the loop
makes the interval's one host sync (`Stepper.read`), records `lr`/`train_loss`/
`train_acc` at that step, calls `on_log`, checks for divergence and, unless
the epoch is over, polls `should_stop` and the time budget. At an epoch's end it
evaluates (`tricks.evaluate`), updates best and early stopping, calls
`on_epoch_end`, checkpoints every `training.checkpoint_every` epochs (or, with
it null, by wall time: `training.checkpoint_every_s`) and at the last, then
polls `should_stop` and the time budget. A cancel ends the run at once; a
preempt or the time budget writes a checkpoint first (the statuses and errors:
tricks.result). Checkpoints are a CPU copy taken at that step and written in
the background (tricks.checkpoint_writer); the run waits for the write only
before it returns (the final, preemption and time-limit checkpoints).

Steps follow INTERNALS.md: `step` is the 0-based index of an optimizer update;
a value logged at step t covers the updates since the previous log point up to
and including t; per-epoch metrics sit at the epoch's last update. Epochs are
0-based everywhere (callbacks, `best`, progress).

Exact resume: a checkpoint (tricks.run_state) holds the model, optimizer,
scaler, every RNG state, the epoch's permutation and seed (its chunks'
augmentation, mixing and dropout draw from streams of it: tricks.step) and
the next batch index, the history and the early-stopping state. It is only
written at log points, where nothing is pending on the device, and a resumed
run rebuilds the chunk of batches it stopped in from the epoch's seed, so on
the CPU it reproduces the uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch

from tricks import checkpoint as ckpt
from tricks.callbacks import Callbacks, progress
from tricks.checkpoint_writer import CheckpointWriter
from tricks.data import Dataset
from tricks.device import (
    autocast,
    compiled,
    grad_scaler,
    pick_device,
    pick_precision,
    place_model,
    setup_backend,
)
from tricks.evaluate import evaluate
from tricks.lr_find import lr_range_test
from tricks.models import build_model
from tricks.regularization import build_optimizer
from tricks.result import TrainResult, check_stop, diverged, out_of_memory
from tricks.run_state import resume_run, run_snapshot
from tricks.schedules import LrSteps
from tricks.spec import JobSpec, steps_per_epoch
from tricks.step import Stepper

EVAL_BATCH = 1024


def train(
    spec: JobSpec,
    dataset: Dataset,
    callbacks: Callbacks | None = None,
    *,
    checkpoint_dir: Path | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train `spec` on `dataset`; resume from the newest checkpoint in `checkpoint_dir` if any.

    A spec with task lr_range_test runs the LR range test instead (no checkpoints).
    """
    if spec.task == "lr_range_test":
        return lr_range_test(spec, dataset, callbacks, device=device)
    cb = callbacks if callbacks is not None else Callbacks()
    tr = spec.training
    dev = pick_device(device or tr.device)
    precision = pick_precision(tr.precision, dev)
    amp = autocast(dev, precision)  # None in fp32
    setup_backend(dev)  # cudnn.benchmark on CUDA

    # ---- data: moved to the device once, in its stored dtype; the lr of every step
    data = dataset.to(dev)
    n_train = len(data.train)
    spe = steps_per_epoch(n_train, tr.batch_size)
    bs = min(tr.batch_size, n_train)  # only when one partial batch is all there is
    epochs, total_steps, log_every = tr.epochs, spe * tr.epochs, tr.log_every
    # python floats, a bounded chunk at a time (a run may be tens of millions of steps):
    # setting the lr costs no tensor op
    lrs = LrSteps(lr0=spec.optimizer.lr, schedule=spec.schedule, steps_per_epoch=spe, epochs=epochs)

    # ---- model, optimizer and every source of randomness; the run's state from a checkpoint
    torch.manual_seed(tr.seed)  # model init; dropout then draws from the global RNG
    dropout = spec.regularization.dropout
    model = build_model(spec.model, tuple(data.input_shape), data.num_classes, dropout)
    model = place_model(model, dev)  # channels_last on CUDA for 2-D convolutions
    opt = build_optimizer(spec.optimizer, model)
    scaler = grad_scaler(dev, precision)
    gen = torch.Generator(device=dev).manual_seed(tr.seed)  # order, augment, mix
    st, last_ckpt = resume_run(checkpoint_dir, model, opt, scaler, gen, dev)  # or a fresh state
    resumed_from = st.step if last_ckpt is not None else None
    # after the resume: opt.load_state_dict replaces the param groups the stepper sets lrs in
    # training.compile: steps call the compiled module; state, checkpoints, eval use `model`
    net = compiled(model, tr.compile)
    stepper = Stepper(
        spec, data, net, opt, scaler, gen, amp, read_every=log_every, timed=tr.compile
    )

    # checkpoints: a CPU copy now, written in the background (tricks.checkpoint_writer)
    writer = CheckpointWriter(checkpoint_dir, cb.on_checkpoint) if checkpoint_dir else None
    last_save = time.monotonic()  # the time rule counts from this attempt's start

    def save(*, pin: bool = False, wait: bool = True) -> Path:
        """Checkpoint update st.step (pinned as a fork point with `pin`); `wait`: until on disk."""
        nonlocal last_save
        assert writer is not None and checkpoint_dir is not None
        path = ckpt.checkpoint_path(checkpoint_dir, st.step)
        if last_ckpt != path:  # else a stop request right after an epoch-end checkpoint
            elapsed = st.elapsed_before + time.perf_counter() - t_start
            state = run_snapshot(st, model, opt, scaler, gen, spec, elapsed)
            writer.submit(state, st.step, st.epoch, st.epoch if pin else None)
            last_save = time.monotonic()
        if wait:
            writer.wait()
        return path

    def time_due(epoch_end: bool) -> bool:
        """checkpoint_every null: an epoch end checkpoint_every_s after the last checkpoint, or a
        log point mid-epoch after twice that; never while a write is still in flight."""
        if writer is None or tr.checkpoint_every is not None or writer.busy():
            return False
        return time.monotonic() - last_save >= tr.checkpoint_every_s * (1 if epoch_end else 2)

    def result(status: str, error: dict | None = None) -> TrainResult:
        if writer is not None:
            writer.wait()  # the run's last checkpoint is on disk before it reports
        out = st.result(status, error, model, last_ckpt)
        if stepper.compile_s is not None:  # training.compile: first step − second step
            out.metrics["compile_s"] = stepper.compile_s
        return out

    def stop_here() -> TrainResult | None:
        """Cancel, preempt or time budget: the result to return now (checkpointed unless cancel)."""
        nonlocal last_ckpt
        stop = check_stop(cb, tr.time_limit_s, st.elapsed_before, t_start)
        if stop is None:
            return None
        if stop[0] != "cancelled" and writer is not None:
            last_ckpt = save()
        return result(*stop)

    def progress_now() -> dict:
        secs, done = time.perf_counter() - t_start, st.step - (resumed_from or 0)
        return progress(st.step, total_steps, min(st.epoch, epochs - 1), epochs, done, secs, bs)

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
    if st.stop_reason is not None:  # the checkpoint is of a finished (early-stopped) run
        return result("succeeded")

    try:
        while st.epoch < epochs:
            st.perm, st.epoch_seed = stepper.start_epoch(st.perm, st.epoch_seed)
            while st.batch < spe:
                lr = lrs[st.step]
                stepper.step(lr, st.step, st.batch)  # no host sync in here
                st.batch += 1
                st.step += 1
                if st.step % log_every and st.batch < spe:
                    continue

                # -------- log point: the one host sync of this interval
                t = st.step - 1
                interval_loss, n_correct, rows = stepper.read()  # note: sync point
                train_loss, train_acc = interval_loss / rows, n_correct / (rows * bs)
                st.ep_loss, st.ep_correct = st.ep_loss + interval_loss, st.ep_correct + n_correct
                st.log(t, lr, train_loss, train_acc)
                cb.on_log(
                    t, {"train_loss": train_loss, "lr": lr, "train_acc": train_acc}, progress_now()
                )
                if not math.isfinite(train_loss):
                    return result("failed", diverged(t, lr))
                if st.batch == spe:
                    break  # stop requests and the time budget are checked after the epoch
                if (stopped := stop_here()) is not None:
                    return stopped
                if writer is not None:
                    writer.poll()  # a background write's error surfaces here
                    if time_due(epoch_end=False):
                        last_ckpt = save(wait=False)

            # -------- end of epoch: evaluate, early stopping, checkpoint
            t = st.step - 1
            val = evaluate(
                model,
                data.val,
                data.y_val,
                EVAL_BATCH,
                amp or contextlib.nullcontext(),
                memory_format=stepper.memory_format,
            )
            es = tr.early_stopping
            ep = st.end_epoch(t, val, spe, bs, es)
            cb.on_epoch_end(st.epoch, t, ep, progress_now())
            if not (math.isfinite(ep["train_loss"]) and math.isfinite(val["val_loss"])):
                return result("failed", diverged(t, lrs[t]))
            finished_epoch = st.epoch
            st.next_epoch(es)  # sets stop_reason once early stopping's patience runs out
            if st.stop_reason is None and st.epoch == tr.stop_after_epochs:
                st.stop_reason = "stop_after_epochs"  # a search's rung; a fork goes on
            last = st.epoch == epochs or st.stop_reason is not None
            every = tr.checkpoint_every
            if writer is not None and (
                last or (every is not None and (finished_epoch + 1) % every == 0) or time_due(True)
            ):  # an epoch end: pinned as a fork point (tricks.fork) with keep_checkpoints epochs
                last_ckpt = save(pin=tr.keep_checkpoints == "epochs", wait=last)
            if st.stop_reason is not None:
                break
            if not last and (stopped := stop_here()) is not None:
                return stopped
    except torch.OutOfMemoryError as exc:
        opt.zero_grad(set_to_none=True)
        return result("failed", out_of_memory(exc, st.step, dev))
    finally:
        if writer is not None:
            writer.close()  # however the run ends, nothing writes its directory after it
    return result("succeeded")
