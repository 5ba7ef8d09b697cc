"""One optimizer update, the same for the training loop and the LR range test.

    set lr (and onecycle's momentum) → augment → mix → forward → loss (+ penalty) → backward → clip → step → zero_grad

The data lives on the device in its stored dtype (uint8 images stay uint8, and
so do labels) and an epoch's batches are slices of a seeded `torch.randperm`
(the last partial batch is dropped), int32 on the CPU (`perm_dtype`: the
values and draws of int64 at 4 bytes a row, which on a narrow table is a fair
share of the data itself). Batches are gathered, made float (`tricks.data.Inputs`:
(x − mean)/std, before augmentation, so its zero fill means what it means for
float data), augmented and mixed a chunk at a time: chunk j of an epoch is its
batches [j·C, (j+1)·C), C batches of at most CHUNK_ELEMS numbers (the last
chunk ends with the epoch). The per-sample draws and ops are those of one
batch at a time, with the fixed cost of each op paid once per chunk instead of
once per step; a step then takes its slice. On CUDA a chunk of images for a
model with 2-D convolutions is made channels_last once, like the model
(`tricks.device.channels_last`). A chunk's labels are gathered with its inputs
and widened to int64 there, so no int64 copy of every label is ever made.

The loss takes soft targets when mixup/CutMix or label smoothing is on: rows of
the table (1−ε)·onehot(k) + ε/K (`tricks.mixup.smooth_targets`, torch's
label-smoothing convention, Szegedy et al. 2016), mixed like the inputs; a
chunk's targets are kept times −1/batch, so a step's loss, the mean of
−Σ target·log_softmax(logits), is one dot product (fewer ops and backward
nodes than cross_entropy with probabilities; the same value up to the order of
the sum). Each dropout layer draws the masks of a chunk's steps in one go
(`tricks.models.layers.plan_masks`).

Randomness is counter-based per chunk, so chunks may cross reads (and the
checkpoints taken there) and resume stays exact: the epoch's permutation and
one 63-bit epoch seed are drawn from the run's generator when the epoch
starts (both are in the checkpoint); chunk j's augmentation and mixing draw
from a generator seeded with stream_seed(epoch seed, j), its dropout masks
from streams of the same seed (`plan_masks`). A run resumed at batch b of an
epoch rebuilds b's chunk from those seeds and goes on from b: it draws what the
uninterrupted run drew, whatever the log interval and wherever it stopped.
L1/L2 penalties are added to the gradients directly (`add_penalty_grads`), or
through autograd when an fp16 grad scaler must scale them with the loss.

Nothing in a step talks to the host: the loss sum and each step's logits stay
on the device until `read()`, the one host sync of a log interval. The caller
reads every `read_every` steps and at each epoch's last batch. Nothing added here
syncs either: no `.item()`, no Python bool of a tensor. The one exception is
`training.compile`: the first two steps are timed with a device sync each to
report the compile time (`compile_s` = first step − second step).
"""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tricks.augment import augment_batch
from tricks.data import Dataset
from tricks.device import channels_last, synchronize
from tricks.mixup import draw_seed, mix_batches, plan_lambdas, plan_mixing, smooth_targets
from tricks.models.layers import dropouts, plan_masks, stream_seed
from tricks.optim_step import clear_grads, step_fn
from tricks.regularization import penalty
from tricks.schedules import momentum_at
from tricks.spec import JobSpec, steps_per_epoch

LOGIT_BUFFER = 1 << 22  # keep a log interval's logits when they are at most 4M numbers
CHUNK_ELEMS = 1 << 18  # inputs gathered (augmented, mixed) at once: batches of at most 256k numbers


class Stepper:
    """Makes the optimizer updates of a run and keeps what they leave for the next `read()`."""

    def __init__(
        self,
        spec: JobSpec,
        data: Dataset,  # already on the device
        model: nn.Module,
        opt: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        gen: torch.Generator,  # order, augment, mix
        amp: AbstractContextManager | None,  # None in fp32: no `with` per step
        read_every: int,
        *,
        timed: bool = False,  # time the first two steps (a sync each): training.compile
    ) -> None:
        tr, reg = spec.training, spec.regularization
        self.model, self.opt, self.scaler, self.gen, self.amp = model, opt, scaler, gen, amp
        self.inputs, self.Y = data.train, data.y_train
        self.K, self.kind = data.num_classes, data.kind
        self.X = data.train.src  # the stored dtype: made float a chunk at a time
        self.dev, self.n = self.X.device, len(data.train)
        n = self.n
        self.memory_format = (
            torch.channels_last
            if self.X.ndim == 4 and channels_last(model, self.dev)
            else torch.contiguous_format
        )
        self.spe, self.bs = steps_per_epoch(n, tr.batch_size), min(tr.batch_size, n)
        self.reg, self.eps, self.clip = reg, reg.label_smoothing, tr.grad_clip
        self.l1, self.l2, self.penalize = reg.l1, reg.l2, bool(reg.l1 or reg.l2)
        self.mixing = reg.mixup is not None or (reg.cutmix is not None and self.kind == "image")
        self.soft = self.mixing or bool(self.eps)  # the loss takes soft targets
        self.groups = opt.param_groups  # note: build after opt.load_state_dict, which replaces them
        self.params = [p for g in opt.param_groups for p in g["params"]]
        self.opt_step = step_fn(opt)  # opt.step() without torch's idle per-call wrappers
        self.weights = [p for p in self.params if p.ndim >= 2]  # what l1/l2 penalize
        self.weight_values = [w.detach() for w in self.weights]  # aliases, outside autograd
        self.smooth = smooth_targets(torch.arange(self.K, device=self.dev), self.K, self.eps)
        self.smooth_neg = self.smooth * (-1.0 / self.bs)  # label smoothing alone: see `tc`
        self.read_every = read_every
        # dropout masks a chunk at a time (not under torch.compile: Python state in forward)
        self.dropouts = [] if tr.compile else dropouts(model)
        # chunks draw from the epoch's seed when anything in them is random
        self.random = bool(reg.augment is not None or self.mixing or self.dropouts)
        # onecycle's cycle_momentum (training only: a range test sweeps the lr alone)
        self.cycle = spec.task == "train" and (
            momentum_at(0, schedule=spec.schedule, steps_per_epoch=self.spe, epochs=tr.epochs)
            is not None
        )
        self.schedule, self.epochs = spec.schedule, tr.epochs
        self.chunk_batches = max(1, CHUNK_ELEMS // (self.bs * math.prod(self.X.shape[1:])))
        # until a read: the loss sum, and each step's logits kept by reference (no tensor op
        # per step; argmax waits for the read) or, when they would take much memory, its
        # predictions; with mixing, the majority label of each mixed target (what train_acc
        # counts): a chunk's labels, the parts of them the read has not counted yet in `truth`
        rows = min(read_every, self.spe)
        self.loss_sum = torch.zeros((), device=self.dev)
        self.keep_logits = rows * self.bs * self.K <= LOGIT_BUFFER
        self.kept: list[torch.Tensor] = []
        self.labels = torch.empty((0, self.bs), dtype=torch.long, device=self.dev)
        self.yc = self.labels.view(-1)  # the current chunk's labels, int64, in batch order
        self.truth: list[torch.Tensor] = []
        # the current chunk: its inputs (and soft targets), its length, the next batch in it,
        # its first batch in the epoch and the first of its batches the next read counts
        self.xc, self.n_chunk, self.r, self.b0, self.r_read = self.X, 0, 0, 0, 0
        self.seed: int | None = None  # the epoch's seed (None: nothing is random)
        # soft targets of the chunk times −1/batch, flat: a step's loss is one dot product
        self.tc: torch.Tensor | None = None
        self.timed, self.step_s = timed, []  # training.compile: the first two steps' seconds
        self.compile_s: float | None = None

    def start_epoch(
        self, perm: torch.Tensor | None, seed: int | None
    ) -> tuple[torch.Tensor, int | None]:
        """The epoch's batch order and seed: drawn now, or restored from a checkpoint."""
        self.perm = None  # the last epoch's, freed before the next is drawn
        if perm is None:
            perm = torch.randperm(
                self.n, generator=self.gen, device=self.dev, dtype=perm_dtype(self.n, self.dev)
            )
        if self.random and seed is None:  # one host sync per epoch, not per step
            seed = draw_seed(self.gen)
        if self.mixing:  # the epoch's λs, coins and boxes
            hw = tuple(self.X.shape[-2:]) if self.kind == "image" else None
            rng = np.random.default_rng(seed)
            self.plan = plan_mixing(self.reg, self.kind, hw, self.spe, rng)
            self.lams = plan_lambdas(self.plan, self.dev)
        self.perm, self.seed = perm, seed
        self.model.train()
        return perm, seed

    def _next_chunk(self, batch: int) -> None:
        """Gather, augment and mix the chunk of batch `batch`; the next step takes `batch`."""
        if self.mixing and self.r_read < self.n_chunk:  # the previous chunk's labels to count
            self.truth.append(self.labels[self.r_read : self.n_chunk])
        self.xc = self.tc = None  # the last chunk's, freed before the next one is made
        bs, j = self.bs, batch // self.chunk_batches
        b0 = j * self.chunk_batches
        n = min(self.chunk_batches, self.spe - b0)
        lo, hi = b0 * bs, (b0 + n) * bs
        rows = self.perm[lo:hi]
        xc = self.inputs.take(rows)  # float32, standardized, before augmenting
        yc = self.Y.index_select(0, rows).long()  # a batch's labels are then a slice
        gen = self._stream(j) if self.reg.augment is not None or self.mixing else self.gen
        if self.reg.augment is not None:
            xc = augment_batch(xc, self.reg.augment, self.kind, gen)
        if self.mixing:
            plan, lams = self.plan[b0 : b0 + n], self.lams[b0 : b0 + n]
            tc = self.smooth.index_select(0, yc)  # smooth[y]: rows of the table
            xc, tc = mix_batches(xc, tc, plan, lams, gen)
            self.labels = torch.argmax(tc.view(n, bs, self.K), 2)
            self.tc = tc.mul(-1.0 / bs).view(-1)
        elif self.eps:  # rows of smooth_targets; faster on the CPU than label_smoothing=eps
            self.tc = self.smooth_neg.index_select(0, yc).view(-1)
        if self.memory_format is torch.channels_last:
            xc = xc.contiguous(memory_format=torch.channels_last)
        if self.dropouts:
            assert self.seed is not None
            plan_masks(self.dropouts, stream_seed(self.seed, j, 1), batch - b0, n)
        self.xc, self.yc, self.n_chunk, self.b0 = xc, yc, n, b0
        self.r = self.r_read = batch - b0

    def _stream(self, j: int) -> torch.Generator:
        """The generator of chunk j's augmentation and mixing: stream (epoch seed, j, 0)."""
        assert self.seed is not None
        return torch.Generator(device=self.dev).manual_seed(stream_seed(self.seed, j, 0))

    def step(self, lr: float, step: int, batch: int) -> None:
        """Update number `step` (0-based), on batch `batch` of the epoch; no host sync."""
        if self.timed and len(self.step_s) < 2:
            self._timed_step(lr, step, batch)
        else:
            self._step(lr, step, batch)

    def _timed_step(self, lr: float, step: int, batch: int) -> None:
        """A step between two syncs; after the second, compile_s = first − second."""
        synchronize(self.dev)  # note: sync point (twice per run, training.compile only)
        t0 = time.perf_counter()
        self._step(lr, step, batch)
        synchronize(self.dev)
        self.step_s.append(time.perf_counter() - t0)
        if len(self.step_s) == 2:
            self.compile_s = max(0.0, self.step_s[0] - self.step_s[1])

    def _step(self, lr: float, step: int, batch: int) -> None:
        for g in self.groups:
            g["lr"] = lr
        if self.cycle:
            self._set_momentum(step)
        if self.r == self.n_chunk:
            self._next_chunk(batch)
        bs, r, model, scaler = self.bs, self.r, self.model, self.scaler
        x = self.xc[r * bs : (r + 1) * bs]
        if self.amp is None:
            logits = model(x)
        else:
            with self.amp:
                logits = model(x)
            logits = logits.float()  # autocast: the loss in fp32
        if self.soft:  # soft targets: mean of −Σ target·log_softmax(logits), as one dot product
            k = bs * self.K  # (2 ops and 2 backward nodes, not cross_entropy's 5 and 5)
            loss = torch.dot(logits.log_softmax(1).view(-1), self.tc[r * k : (r + 1) * k])
        else:
            loss = F.cross_entropy(logits, self.yc[r * bs : (r + 1) * bs])
        if self.penalize and scaler is not None:
            scaler.scale(loss + penalty(model, self.l1, self.l2)).backward()
        elif scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
            if self.penalize:  # d/dw of l1·Σ|w| + l2·Σw², added in place of autograd
                add_penalty_grads(self.weights, self.l1, self.l2, self.weight_values)
        if self.clip is not None:
            if scaler is not None:
                scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        if scaler is not None:
            scaler.step(self.opt)
            scaler.update()
        else:
            self.opt_step()
        clear_grads(self.params)  # zero_grad(set_to_none=True)
        self.loss_sum += loss.detach()
        self.kept.append(logits.detach() if self.keep_logits else logits.detach().argmax(dim=1))
        self.r += 1

    def _set_momentum(self, step: int) -> None:
        """momentum (sgd) or betas[0] (adam, adamw) of update `step`, as torch OneCycleLR."""
        m = momentum_at(step, schedule=self.schedule, steps_per_epoch=self.spe, epochs=self.epochs)
        for g in self.groups:
            if "betas" in g:
                g["betas"] = (m, g["betas"][1])
            else:
                g["momentum"] = m

    def read(self) -> tuple[float, int, int]:
        """(loss summed over the steps since the last read, correct predictions, steps)."""
        row, end, bs = len(self.kept), self.b0 + self.r, self.bs
        if self.mixing:
            self.truth.append(self.labels[self.r_read : self.r])
            truth = self.truth[0] if len(self.truth) == 1 else torch.cat(self.truth)
            self.truth.clear()
            self.r_read = self.r
        elif end - row >= self.b0:  # the interval lies in this chunk: its labels are a slice
            truth = self.yc[(end - row - self.b0) * bs : (end - self.b0) * bs].view(row, bs)
        else:  # it began in an earlier chunk: gather its labels again (once per read)
            truth = self.Y.index_select(0, self.perm[(end - row) * bs : end * bs]).view(row, bs)
        preds = torch.stack(self.kept)
        hits = (preds.argmax(dim=2) if self.keep_logits else preds) == truth
        self.kept.clear()
        # note: the host sync, one for both numbers (float64: the float32 sum and the count
        # exactly; two reads would be two syncs)
        loss_sum, n_correct = torch.stack((self.loss_sum.double(), hits.sum().double())).tolist()
        self.loss_sum.zero_()
        return loss_sum, int(n_correct), row


def perm_dtype(n: int, device: torch.device) -> torch.dtype:
    """int32 for an epoch's permutation on the CPU below 2**31 rows: torch's CPU randperm
    draws the same numbers into either dtype (tests/tricks/test_compact_bookkeeping.py), so
    the batch order is the int64 one at half the memory. Elsewhere int64, as it always was:
    that is device memory, not the worker's, and other backends' randperm may differ by dtype."""
    return torch.int32 if device.type == "cpu" and n < 2**31 else torch.int64


def add_penalty_grads(
    weights: list[torch.Tensor],
    l1: float,
    l2: float,
    values: list[torch.Tensor] | None = None,  # the weights detached (made once by the caller)
) -> None:
    """grad += l1·sign(w) + 2·l2·w: the gradient of regularization.penalty, without its graph.

    Same values as backpropagating `loss + penalty(model, l1, l2)` (torch's |w|
    has subgradient 0 at 0, as sign does) at a fraction of the cost: a few
    fused foreach ops instead of a sum and a backward node per weight. The ops
    read the weights through detached aliases (`values`, the same storage), so
    autograd records nothing without a no_grad context (on a small CPU step its
    enter and exit cost more than the ops).
    """
    if values is None:
        values = [w.detach() for w in weights]
    grads = []
    for w in weights:
        if w.grad is None:  # a weight the loss did not use still feels the penalty
            w.grad = torch.zeros_like(w, requires_grad=False)
        grads.append(w.grad)
    if l1:
        torch._foreach_add_(grads, torch._foreach_sign(values), alpha=l1)
    if l2:
        torch._foreach_add_(grads, values, alpha=2 * l2)
