"""Validation metrics: loss, accuracy and expected calibration error.

ECE follows Guo et al., "On Calibration of Modern Neural Networks" (ICML 2017,
arXiv:1706.04599), §2: predictions are grouped by confidence (the top softmax
probability) into M equal-width bins (lo, hi] over [0, 1]; ECE = Σ_b |B_b|/n ·
|acc(B_b) − conf(B_b)|. M = 15 as in the paper.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import nn

from tricks.data import Inputs

ECE_BINS = 15


@functools.lru_cache(maxsize=8)
def _inner_edges(n_bins: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The M − 1 inner bin edges of [0, 1], made once (not per evaluation)."""
    return torch.linspace(0, 1, n_bins + 1, device=device, dtype=dtype)[1:-1]


def _bin_into(per_bin: torch.Tensor, conf: torch.Tensor, correct: torch.Tensor) -> None:
    """per_bin[b] += Σ_{i∈b} (correct_i − conf_i), rows in order: batch after batch on the CPU
    adds what one call over every row adds (index_add_ runs through its rows in order)."""
    # bucketize with the inner edges puts conf in bin b when edge[b] < conf <= edge[b+1]
    bins = torch.bucketize(conf, _inner_edges(per_bin.shape[0], conf.device, conf.dtype))
    per_bin.index_add_(0, bins, correct.to(conf.dtype) - conf)


def _ece_from(conf: torch.Tensor, correct: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Σ_b |Σ_{i∈b} correct_i − Σ_{i∈b} conf_i| / n: |B|/n·|acc(B) − conf(B)| summed, empty bins 0."""
    per_bin = torch.zeros(n_bins, device=conf.device, dtype=conf.dtype)
    _bin_into(per_bin, conf, correct)
    return per_bin.abs().sum() / max(int(conf.shape[0]), 1)


def expected_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, n_bins: int = ECE_BINS
) -> torch.Tensor:
    """ECE of (N, K) class probabilities against (N,) labels, as a 0-dim tensor (no host sync)."""
    conf, pred = probs.max(dim=1)
    return _ece_from(conf, pred == labels, n_bins)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor | Inputs,
    y: torch.Tensor,
    batch_size: int,
    amp: AbstractContextManager,
    *,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> dict[str, float]:
    """val_loss (plain cross-entropy, no smoothing), val_acc, val_ece, in eval mode.

    Batched so a large validation set fits next to the training batch: `x` is
    float inputs, or a split in its stored dtype (`tricks.data.Inputs`) made
    float a batch at a time, in `memory_format` (channels_last on CUDA for 2-D
    convolutions); `y` integer labels of any dtype, widened a batch at a time.
    Each batch is reduced as it comes (hits, the ECE's bins), so no N × K
    logits are kept: what stays is each row's log p(label), N floats, summed
    at the end by nll_loss itself as an (N, 1) table with label 0: the same
    cascade over the same numbers as nll_loss over all the logits. So every
    metric is, bit for bit on the CPU, what one pass over the concatenated
    logits gives. One host sync at the end.
    """
    n_rows = len(x)
    dev = y.device
    picked = torch.empty((n_rows, 1), device=dev)  # log p(label) of each row
    hits = torch.zeros((), dtype=torch.long, device=dev)
    per_bin = torch.zeros(ECE_BINS, device=dev)

    def batch(lo: int, hi: int) -> torch.Tensor:
        xb = x.rows(lo, hi) if isinstance(x, Inputs) else x[lo:hi]
        if memory_format is not torch.contiguous_format and xb.ndim == 4:
            xb = xb.contiguous(memory_format=memory_format)
        return xb

    was_training = model.training
    model.eval()
    with amp:  # one region (autocast casts the weights once); the fp32 reductions ignore it
        for lo in range(0, n_rows, batch_size):
            hi = min(lo + batch_size, n_rows)
            # no name holds the batch's inputs: they are freed before the next one is made
            logp = model(batch(lo, hi)).float().log_softmax(dim=1)
            top, pred = logp.max(dim=1)
            yb = y[lo:hi].long()
            correct = pred == yb
            hits += correct.sum()
            picked[lo:hi] = logp.gather(1, yb.view(-1, 1))
            _bin_into(per_bin, top.exp(), correct)
    model.train(was_training)
    # column 0 of the (N, 1) table is each row's own label (uint8 zeros: 1 byte a row, not 8)
    loss = F.nll_loss(picked, torch.zeros(n_rows, dtype=torch.uint8, device=dev), reduction="sum")
    n = max(n_rows, 1)
    ece = per_bin.abs().sum() / n
    loss, hits, ece = torch.stack((loss, hits.to(loss.dtype), ece)).tolist()  # note: sync
    return {"val_loss": loss / n, "val_acc": hits / n, "val_ece": ece}
