"""Expected calibration error (tricks.evaluate) against hand-computed values; evaluate against
the all-at-once computation."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from tricks.data import Inputs
from tricks.evaluate import evaluate, expected_calibration_error


def test_ece_hand_computed():
    # confidences 0.91 (right) and 0.92 (wrong) share bin (13/15, 14/15]; 0.62 (wrong) is alone
    probs = torch.tensor([[0.91, 0.09], [0.08, 0.92], [0.62, 0.38]])
    labels = torch.tensor([0, 0, 1])
    want = 2 / 3 * abs(0.5 - 0.915) + 1 / 3 * 0.62
    assert expected_calibration_error(probs, labels).item() == pytest.approx(want, abs=1e-6)
    # perfectly calibrated: 4 predictions at 0.75, 3 right
    probs = torch.tensor([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probs, torch.tensor([0, 0, 0, 1])).item() == pytest.approx(
        0.0, abs=1e-6
    )


@pytest.mark.parametrize(("n", "batch"), [(0, 64), (1, 64), (999, 64), (5000, 1024), (700, 700)])
def test_evaluate_is_one_pass_over_all_logits(n: int, batch: int) -> None:
    """Reduced batch by batch, with compact (uint8) labels and inputs made float per batch,
    evaluate gives exactly what nll_loss, argmax and the ECE over every logit at once give."""
    torch.manual_seed(n)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))
    src = torch.randint(0, 256, (n + 3, 4), dtype=torch.uint8)
    split = Inputs(
        src,
        torch.randperm(n + 3, dtype=torch.int32)[:n],
        torch.full((1, 4), 120.0, dtype=torch.float64),
        torch.full((1, 4), 70.0, dtype=torch.float64),
    )
    y = torch.randint(0, 5, (n,), dtype=torch.uint8)
    got = evaluate(model, split, y, batch, contextlib.nullcontext())
    with torch.no_grad():  # the oracle: everything at once, int64 labels
        logp = model(split.materialize()).log_softmax(dim=1)
    y64, m = y.long(), max(n, 1)
    want = {
        "val_loss": F.nll_loss(logp, y64, reduction="sum").item() / m,
        "val_acc": (logp.argmax(dim=1) == y64).sum().item() / m,
        "val_ece": expected_calibration_error(logp.exp(), y64).item(),
    }
    assert got == want  # exactly
    assert evaluate(model, split.materialize(), y64, batch, contextlib.nullcontext()) == want
