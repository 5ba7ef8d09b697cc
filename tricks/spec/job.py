"""The whole job spec and the schedule checks it shares with the dataset checks and the preview."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tricks.spec.base import SpecError, Strict
from tricks.spec.parts import DataSpec, MLPSpec, ModelSpec, OptimizerSpec, SGDSpec
from tricks.spec.regularization import LRRangeSpec, RegularizationSpec, TrainingSpec
from tricks.spec.schedule import (
    MultiStepDecay,
    ScheduleSpec,
    StepDecay,
    _decay_min_lr,
)

# ---------------------------------------------------------------------- whole spec


class JobSpec(Strict):
    name: str = Field("", max_length=200)
    task: Literal["train", "lr_range_test"] = "train"
    data: DataSpec
    model: ModelSpec = Field(default_factory=MLPSpec)
    optimizer: OptimizerSpec = Field(default_factory=SGDSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    lr_range: LRRangeSpec | None = Field(None, description="Only for task lr_range_test.")

    @model_validator(mode="before")
    @classmethod
    def _default_tags(cls, data: Any) -> Any:
        """Let users omit the union tags: a bare optimizer is sgd, a bare model mlp, a bare decay cosine."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for section, tag, default in (("optimizer", "name", "sgd"), ("model", "arch", "mlp")):
            if isinstance(data.get(section), dict) and tag not in data[section]:
                data[section] = {tag: default, **data[section]}
        sched = data.get("schedule")
        if (
            isinstance(sched, dict)
            and isinstance(sched.get("decay"), dict)
            and "kind" not in sched["decay"]
        ):
            data["schedule"] = {**sched, "decay": {"kind": "cosine", **sched["decay"]}}
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> JobSpec:
        check_schedule(self.schedule, lr0=self.optimizer.lr, epochs=self.training.epochs)
        if self.task == "lr_range_test" and self.lr_range is None:
            self.lr_range = LRRangeSpec()
        if self.task == "train" and self.lr_range is not None:
            raise SpecError(
                ("lr_range",),
                "lr_range is only for task 'lr_range_test'; set task or remove lr_range",
            )
        return self


def check_schedule(
    schedule: ScheduleSpec,
    *,
    lr0: float,
    epochs: int,
    steps_per_epoch: int | None = None,
    lr_name: str = "optimizer.lr",
) -> None:
    """Raise SpecError (loc under "schedule") when the schedule does not fit the run.

    Shared by JobSpec, the dataset checks (which know steps_per_epoch) and POST
    /schedules/preview (whose lr field is plain `lr`).
    """
    w, d = schedule.warmup, schedule.decay
    total = None if steps_per_epoch is None else steps_per_epoch * epochs
    if w is not None and w.epochs is not None and w.epochs >= epochs:
        raise SpecError(
            ("schedule", "warmup", "epochs"),
            f"schedule.warmup ({w.epochs:g} epochs) is as long as or longer than training "
            f"({epochs} epochs): shorten the warm-up or train longer",
        )
    if w is not None and w.steps is not None and total is not None and w.steps >= total:
        raise SpecError(
            ("schedule", "warmup", "steps"),
            f"warm-up ({w.steps} steps) is as long as or longer than training ({total} steps = "
            f"{epochs} epochs × {steps_per_epoch} batches): shorten it or train longer",
        )
    if w is not None and w.start_lr > lr0:
        raise SpecError(
            ("schedule", "warmup", "start_lr"),
            f"schedule.warmup.start_lr ({w.start_lr:g}) is above {lr_name} ({lr0:g}): warm-up must rise",
        )
    if isinstance(d, MultiStepDecay) and (not d.at(epochs) or d.at(epochs)[-1] >= epochs):
        raise SpecError(
            ("schedule", "decay", "milestones"),
            f"schedule.decay.milestones has {d.at(epochs)[-1]}, past the last epoch ({epochs - 1}): "
            f"milestones must be below the number of epochs ({epochs})"
            if d.at(epochs)
            else f"a {epochs}-epoch run has no epoch boundary for the default milestones (50%, "
            f"75%): train at least 2 epochs or use a per-batch decay such as cosine",
        )
    if isinstance(d, StepDecay) and d.every(epochs) >= epochs:
        raise SpecError(
            ("schedule", "decay", "step_epochs"),
            f"schedule.decay.step_epochs ({d.every(epochs)}) ≥ the number of epochs ({epochs}): "
            f"the lr would never decay"
            + ("" if d.step_epochs is not None else "; train at least 2 epochs or use cosine"),
        )
    min_lr = _decay_min_lr(d)
    if min_lr is not None and min_lr > lr0:
        raise SpecError(
            ("schedule", "decay", "min_lr"),
            f"schedule.decay.min_lr ({min_lr:g}) is above {lr_name} ({lr0:g}): set min_lr below it",
        )
