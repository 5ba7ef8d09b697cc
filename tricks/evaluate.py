"""Validation metrics: loss, accuracy and expected calibration error.

ECE follows Guo et al., "On Calibration of Modern Neural Networks" (ICML 2017,
arXiv:1706.04599), §2: predictions are grouped by confidence (the top softmax
probability) into M equal-width bins (lo, hi] over [0, 1]; ECE = Σ_b |B_b|/n ·
|acc(B_b) − conf(B_b)|. M = 15 as in the paper.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import nn

ECE_BINS = 15


def expected_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, n_bins: int = ECE_BINS
) -> torch.Tensor:
    """ECE of (N, K) class probabilities against (N,) labels, as a 0-dim tensor (no host sync)."""
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).to(conf.dtype)
    # bucketize with the inner edges puts conf in bin b when edge[b] < conf <= edge[b+1]
    edges = torch.linspace(0, 1, n_bins + 1, device=probs.device, dtype=conf.dtype)[1:-1]
    bins = torch.bucketize(conf, edges)
    conf_sum = torch.zeros(n_bins, device=probs.device, dtype=conf.dtype).index_add_(0, bins, conf)
    acc_sum = torch.zeros(n_bins, device=probs.device, dtype=conf.dtype).index_add_(
        0, bins, correct
    )
    # |B|/n · |acc − conf| = |Σcorrect − Σconf| / n, and empty bins add 0
    return (acc_sum - conf_sum).abs().sum() / max(int(labels.shape[0]), 1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    amp: AbstractContextManager,
) -> dict[str, float]:
    """val_loss (plain cross-entropy, no smoothing), val_acc, val_ece, in eval mode.

    Batched so a large validation set fits next to the training batch; the
    probabilities are kept (N × K floats) for the ECE. One host sync at the end.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    probs = []
    for i in range(0, x.shape[0], batch_size):
        with amp:
            logits = model(x[i : i + batch_size])
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum")
        probs.append(logits.softmax(dim=1))
    model.train(was_training)
    p = torch.cat(probs)
    acc = (p.argmax(dim=1) == y).sum()
    ece = expected_calibration_error(p, y)
    n = max(int(y.shape[0]), 1)
    loss, acc, ece = torch.stack([loss_sum, acc.double(), ece.double()]).tolist()  # note: sync
    return {"val_loss": loss / n, "val_acc": acc / n, "val_ece": ece}
