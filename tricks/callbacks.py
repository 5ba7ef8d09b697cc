"""How the training loop reports: a small callback interface, all methods optional.

The loop calls these only at log points and epoch ends (never per step), so a
callback may do I/O (write to Redis, print) without slowing training. The worker
subclasses `Callbacks`; tests use `CompositeCallbacks` to stack a recorder on
top of a stopper. `progress` builds the progress dict they receive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

StopRequest = Literal["cancel", "preempt"] | None


class Callbacks:
    """Every method is a no-op by default; override what you need."""

    def on_start(self, info: dict[str, Any]) -> None:
        """Once, before the first step: total_steps, steps_per_epoch, epochs, device, precision, resumed_from_step."""

    def on_log(self, step: int, metrics: dict[str, float], progress: dict[str, Any]) -> None:
        """Every `training.log_every` steps, after the one host sync of that interval."""

    def on_epoch_end(
        self, epoch: int, step: int, metrics: dict[str, float], progress: dict[str, Any]
    ) -> None:
        """After each epoch's evaluation; `step` is the epoch's last update index."""

    def on_checkpoint(self, path: Path, epoch: int, step: int) -> None:
        """After a checkpoint file is complete on disk."""

    def should_stop(self) -> StopRequest:
        """Polled at each log point: None to go on, "cancel" to stop, "preempt" to checkpoint and stop."""
        return None


def progress(
    step: int, total_steps: int, epoch: int, epochs: int, done: int, secs: float, batch_size: int
) -> dict[str, Any]:
    """What `on_log` / `on_epoch_end` get as `progress`; `done` updates in `secs` give the rate."""
    rate = done / secs if secs > 0 else 0.0
    return {
        "epoch": epoch,
        "epochs": epochs,
        "step": step,
        "total_steps": total_steps,
        "fraction": step / total_steps,
        "eta_seconds": (total_steps - step) / rate if rate > 0 else None,
        "samples_per_second": rate * batch_size,
    }


class CompositeCallbacks(Callbacks):
    """Fan out to several callbacks; the first non-None stop request wins."""

    def __init__(self, *callbacks: Callbacks | None) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def on_start(self, info: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.on_start(info)

    def on_log(self, step: int, metrics: dict[str, float], progress: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.on_log(step, metrics, progress)

    def on_epoch_end(
        self, epoch: int, step: int, metrics: dict[str, float], progress: dict[str, Any]
    ) -> None:
        for c in self.callbacks:
            c.on_epoch_end(epoch, step, metrics, progress)

    def on_checkpoint(self, path: Path, epoch: int, step: int) -> None:
        for c in self.callbacks:
            c.on_checkpoint(path, epoch, step)

    def should_stop(self) -> StopRequest:
        for c in self.callbacks:
            req = c.should_stop()
            if req is not None:
                return req
        return None
