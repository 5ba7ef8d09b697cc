"""Where a run computes and in what precision: the device, autocast and the grad scaler.

Shared by the training loop (`tricks.train`) and the LR range test
(`tricks.lr_find`), so both pick the same device and precision for a spec.
Mixed precision is CUDA only: on the CPU every run is fp32. fp16 needs loss
scaling (Micikevicius et al., "Mixed Precision Training", ICLR 2018,
arXiv:1710.03740), bf16 does not: its exponent range is fp32's.
"""

from __future__ import annotations

import torch


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


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 (its gradients underflow without one); None otherwise."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
