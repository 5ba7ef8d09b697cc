"""Device and precision choice (tricks.device)."""

from __future__ import annotations

import torch

import tricks.device as device_mod


def test_precision_is_fp32_off_cuda():
    cpu = torch.device("cpu")
    assert device_mod.pick_device("cpu") == cpu
    assert {device_mod.pick_precision(p, cpu) for p in ("auto", "fp32", "bf16", "fp16")} == {"fp32"}
