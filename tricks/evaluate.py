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


def _ece_from(conf: torch.Tensor, correct: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Σ_b |Σ_{i∈b} correct_i − Σ_{i∈b} conf_i| / n: |B|/n·|acc(B) − conf(B)| summed, empty bins 0."""
    # bucketize with the inner edges puts conf in bin b when edge[b] < conf <= edge[b+1]
    bins = torch.bucketize(conf, _inner_edges(n_bins, conf.device, conf.dtype))
    per_bin = torch.zeros(n_bins, device=conf.device, dtype=conf.dtype)
    per_bin.index_add_(0, bins, correct.to(conf.dtype) - conf)
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

    Batched so a large validation set fits next to the training batch; the
    logits are kept (N × K floats) for the ECE. `x` is float inputs, or a
    split in its stored dtype (`tricks.data.Inputs`) made float a batch at a
    time, in `memory_format` (channels_last on CUDA for 2-D convolutions).
    One host sync at the end.
    """
    n_rows = len(x)

    def batch(lo: int, hi: int) -> torch.Tensor:
        xb = x.rows(lo, hi) if isinstance(x, Inputs) else x[lo:hi]
        if memory_format is not torch.contiguous_format and xb.ndim == 4:
            xb = xb.contiguous(memory_format=memory_format)
        return xb

    was_training = model.training
    model.eval()
    with amp:
        if n_rows <= batch_size:
            logits = model(batch(0, n_rows))
        else:
            logits = torch.cat(
                [model(batch(i, i + batch_size)) for i in range(0, n_rows, batch_size)]
            )
    model.train(was_training)
    logp = logits.float().log_softmax(dim=1)
    top, pred = logp.max(dim=1)
    correct = pred == y
    loss = F.nll_loss(logp, y, reduction="sum")
    ece = _ece_from(top.exp(), correct, ECE_BINS)
    n = max(int(y.shape[0]), 1)
    loss, hits, ece = torch.stack((loss, correct.sum().to(loss.dtype), ece)).tolist()  # note: sync
    return {"val_loss": loss / n, "val_acc": hits / n, "val_ece": ece}
