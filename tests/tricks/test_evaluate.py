"""Expected calibration error (tricks.evaluate) against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from tricks.evaluate import expected_calibration_error


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
