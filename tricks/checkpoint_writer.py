"""Checkpoints written in the background, so that training does not wait for the disk.

A checkpoint is taken in two parts. On the training thread, at a log point,
`snapshot` copies the run's state to CPU tensors and fresh containers (a copy
of the weights and optimizer state: cheap next to serialising and fsyncing
them); from then on the loop may go on updating the live tensors. A background
thread then does what `tricks.checkpoint.save_checkpoint` does (torch.save,
fsync, rename, prune) and, for a fork point, `pin_epoch`. The file holds
exactly what a synchronous save at that step would have written, so exact
resume is unchanged.

At most one write is in flight: `submit` waits for the previous one first
(the loop skips an optional, time-based checkpoint instead while one is busy:
`busy`). What a write raised (a full disk: `checkpoint.DiskFull`) is raised
again on the training thread, by the next `poll` or `wait`, with its type and
message unchanged, so a failed background write ends the run as a failed
synchronous one did. `on_done(path, epoch, step)` (the loop passes
`Callbacks.on_checkpoint`) is also called on the training thread, once the
file is complete on disk. The loop waits for the write before it reports a
preemption, a time limit or its end (`wait`), and joins it however it exits
(`close`), so nothing writes into a job's directory after `train` returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tricks import checkpoint as ckpt


def snapshot(obj: Any) -> Any:
    """A copy of a nested state (dicts, lists, tuples) with every tensor copied to the CPU.

    Numbers and strings are immutable and shared; everything the loop mutates in
    place (parameters, optimizer buffers, history lists) is copied.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [snapshot(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(snapshot(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes one checkpoint at a time into `directory` on a background thread."""

    def __init__(
        self, directory: Path, on_done: Callable[[Path, int, int], None] | None = None
    ) -> None:
        self.directory = Path(directory)
        self.on_done = on_done
        self._thread: threading.Thread | None = None
        self._job: tuple[Path, int, int] | None = None  # (path, epoch, step) in flight
        self._error: BaseException | None = None

    def busy(self) -> bool:
        """A write is still in flight."""
        return self._thread is not None and self._thread.is_alive()

    def submit(
        self, state: dict[str, Any], step: int, epoch: int, pin_epochs: int | None = None
    ) -> Path:
        """Start writing `state` (a `snapshot`) as the checkpoint of `step`; its path.

        Waits for the write in flight first. With `pin_epochs` the file is also
        pinned as the state after that many epochs (`checkpoint.pin_epoch`).
        """
        self.wait()
        path = ckpt.checkpoint_path(self.directory, step)
        self._job = (path, epoch, step)
        self._thread = threading.Thread(
            target=self._write,
            args=(state, step, pin_epochs),
            name=f"checkpoint-{step}",
            daemon=True,
        )
        self._thread.start()
        return path

    def _write(self, state: dict[str, Any], step: int, pin_epochs: int | None) -> None:
        try:
            path = ckpt.save_checkpoint(state, self.directory, step)
            if pin_epochs is not None:
                ckpt.pin_epoch(path, pin_epochs)
        except BaseException as e:  # noqa: BLE001 - raised again on the training thread
            self._error = e

    def poll(self) -> None:
        """If the write in flight has ended: raise its error, or report it done. No waiting."""
        if self._thread is not None and not self._thread.is_alive():
            self._finish()

    def wait(self) -> None:
        """Wait for the write in flight; raise its error, or report it done."""
        if self._thread is not None:
            self._thread.join()
            self._finish()

    def close(self) -> None:
        """Wait for the write in flight, raising nothing: the run is ending with another outcome."""
        if self._thread is not None:
            self._thread.join()
            self._thread, self._job, self._error = None, None, None

    def _finish(self) -> None:
        job, error = self._job, self._error
        self._thread, self._job, self._error = None, None, None
        if error is not None:
            raise error
        if job is not None and self.on_done is not None:
            self.on_done(*job)
