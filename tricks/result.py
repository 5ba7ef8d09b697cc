"""How a run ends: `TrainResult`, and the status and error of each way it can stop.

Both the training loop (`tricks.train`) and the LR range test (`tricks.lr_find`)
return a `TrainResult` and stop the same way: "cancel" ends a run as
"cancelled", "preempt" as "preempted" (the worker re-queues it; training resumes
from the checkpoint it wrote), and the errors below name what to change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from tricks.callbacks import Callbacks


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
    # why it ended before its planned steps: "early_stopping" (training), "diverged" (the
    # LR range test's stop rule); None when it ran them all or a request stopped it
    stop_reason: str | None = None
    checkpoint: str | None = None  # the last checkpoint written, if any
    lr_range: dict[str, Any] | None = None  # task lr_range_test: tricks.lr_find's result


def check_stop(
    cb: Callbacks, time_limit_s: float | None, elapsed_before: float, t_start: float
) -> tuple[str, dict | None] | None:
    """(status, error) when the run must stop here: cancel, preempt or the time budget."""
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


def diverged(step: int, lr: float) -> dict[str, str]:
    return {"type": "diverged", "message": f"diverged at step {step} (lr = {lr:.6g})"}


def out_of_memory(exc: BaseException, step: int, device: torch.device) -> dict[str, str]:
    return {
        "type": "oom",
        "message": f"out of memory at step {step} on {device} ({str(exc).splitlines()[0]}): "
        f"lower training.batch_size or the model size",
    }
