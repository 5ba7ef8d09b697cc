"""Start a job from another job's checkpoint with a different spec (POST /jobs/{id}/fork).

The new job's checkpoint directory gets a copy of the parent's state after
`from_epoch` epochs: model, optimizer, scaler and every RNG state, the epoch and
step counters (so training resumes at step from_epoch·steps_per_epoch). What
describes the parent's run is reset: the metric history, latest metrics, best
epoch, early-stopping state and elapsed time, so the fork's history starts at
its first own step. `tricks.train.train` then resumes from it as from any
checkpoint, and since the lr of step t is the new schedule's lr_at(t), its lr
curve switches at the fork point.

Only what the loop reads from the spec at each step may differ from the parent
(schedule, optimizer.lr, regularization, training.epochs): the optimizer's
saved param groups (momentum, weight decay) are the parent's.
"""

from __future__ import annotations

from pathlib import Path

from tricks import checkpoint as ckpt
from tricks.spec import JobSpec


def seed_checkpoint(parent_checkpoint: Path, checkpoint_dir: Path, spec: JobSpec) -> Path | None:
    """Write the fork's first checkpoint unless the job already has one (a retry resumes its own)."""
    if ckpt.latest_checkpoint(checkpoint_dir) is not None:
        return None
    state = ckpt.load_checkpoint(parent_checkpoint)
    state.pop("format", None)
    state.update(
        history={},
        metrics={},
        best={"val_acc": None, "epoch": None},
        early={"best": None, "bad_epochs": 0},
        stop_reason=None,
        elapsed_s=0.0,
        spec=spec.model_dump_json(),
    )
    return ckpt.save_checkpoint(state, checkpoint_dir, state["step"])
