"""The schedule section: warm-up and the decay kinds (see tricks.schedules for the maths)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tricks.spec.base import MAX_EPOCHS, SpecError, Strict

# ----------------------------------------------------------------------- schedule


class WarmupSpec(Strict):
    epochs: float | None = Field(
        None, gt=0.0, le=MAX_EPOCHS, description="Warm-up length in epochs (give epochs or steps)."
    )
    steps: int | None = Field(
        None, ge=1, le=10_000_000, description="Warm-up length in optimizer steps."
    )
    start_lr: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="lr before the first step; the first batch uses start_lr + (lr0-start_lr)/m.",
    )

    @model_validator(mode="after")
    def _one_length(self) -> WarmupSpec:
        if (self.epochs is None) == (self.steps is None):
            raise SpecError(("epochs",), "give exactly one of warmup.epochs or warmup.steps")
        return self


class ConstantDecay(Strict):
    kind: Literal["constant"] = "constant"


class StepDecay(Strict):
    kind: Literal["step"] = "step"
    step_epochs: int = Field(
        30,
        ge=1,
        le=MAX_EPOCHS,
        description="Multiply the lr by gamma every this many epochs (torch StepLR).",
    )
    gamma: float = Field(0.1, gt=0.0, le=1.0)


class MultiStepDecay(Strict):
    kind: Literal["multistep"] = "multistep"
    milestones: list[Annotated[int, Field(ge=1, le=MAX_EPOCHS)]] = Field(
        min_length=1,
        max_length=64,
        description="Epochs at which the lr is multiplied by gamma (torch MultiStepLR), increasing.",
    )
    gamma: float = Field(0.1, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _increasing(self) -> MultiStepDecay:
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:], strict=False)):
            raise SpecError(
                ("milestones",), "milestones must be strictly increasing, e.g. [30, 60, 80]"
            )
        return self


class CosineDecay(Strict):
    kind: Literal["cosine"] = "cosine"
    min_lr: float = Field(0.0, ge=0.0, le=100.0, description="lr at the end of the decay.")


class LinearDecay(Strict):
    kind: Literal["linear"] = "linear"
    min_lr: float = Field(0.0, ge=0.0, le=100.0)


class ExponentialDecay(Strict):
    kind: Literal["exponential"] = "exponential"
    gamma: float = Field(
        0.95,
        gt=0.0,
        le=1.0,
        description="Multiplier per epoch (applied smoothly per batch in batch mode).",
    )


class OneCycleDecay(Strict):
    kind: Literal["onecycle"] = "onecycle"
    pct_start: float = Field(
        0.3, gt=0.0, lt=1.0, description="Share of training spent rising to lr0 (torch OneCycleLR)."
    )
    div_factor: float = Field(25.0, ge=1.0, le=1e6, description="Initial lr = lr0 / div_factor.")
    final_div_factor: float = Field(
        1e4, ge=1.0, le=1e9, description="Final lr = initial lr / final_div_factor."
    )


class CosineRestartsDecay(Strict):
    kind: Literal["cosine_restarts"] = "cosine_restarts"
    t0_epochs: float = Field(
        10.0, gt=0.0, le=MAX_EPOCHS, description="Length of the first cycle in epochs (SGDR T_0)."
    )
    t_mult: int = Field(
        1, ge=1, le=10, description="Each cycle is t_mult times longer than the one before."
    )
    min_lr: float = Field(0.0, ge=0.0, le=100.0)


class PolynomialDecay(Strict):
    kind: Literal["polynomial"] = "polynomial"
    power: float = Field(1.0, gt=0.0, le=10.0)
    min_lr: float = Field(0.0, ge=0.0, le=100.0)


class InverseSqrtDecay(Strict):
    kind: Literal["inverse_sqrt"] = "inverse_sqrt"
    timescale_steps: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="lr0·sqrt(s/(u+s)); 0 means s = the warm-up length (or 1 without warm-up), as in the Transformer schedule.",
    )


class WSDDecay(Strict):
    kind: Literal["wsd"] = "wsd"
    decay_fraction: float = Field(
        0.2,
        gt=0.0,
        le=1.0,
        description="Share of the post-warm-up steps spent in the final linear cool-down.",
    )
    min_lr: float = Field(0.0, ge=0.0, le=100.0)


DecaySpec = Annotated[
    ConstantDecay
    | StepDecay
    | MultiStepDecay
    | CosineDecay
    | LinearDecay
    | ExponentialDecay
    | OneCycleDecay
    | CosineRestartsDecay
    | PolynomialDecay
    | InverseSqrtDecay
    | WSDDecay,
    Field(discriminator="kind"),
]


class ScheduleSpec(Strict):
    warmup: WarmupSpec | None = Field(
        None, description="Linear warm-up before the decay; null for none."
    )
    decay: DecaySpec = Field(default_factory=CosineDecay)
    per: Literal["batch", "epoch"] = Field(
        "batch",
        description="`batch`: the lr changes every optimizer step; `epoch`: once per epoch (torch's per-epoch scheduler.step()).",
    )

    @model_validator(mode="after")
    def _coherent(self) -> ScheduleSpec:
        w = self.warmup
        if w is not None and self.per == "epoch":
            if w.steps is not None:
                raise SpecError(
                    ("warmup", "steps"),
                    "schedule.per is 'epoch': give warmup.epochs, not warmup.steps",
                )
            if w.epochs is not None and w.epochs != int(w.epochs):
                raise SpecError(
                    ("warmup", "epochs"),
                    "schedule.per is 'epoch': warmup.epochs must be a whole number",
                )
        if w is not None and isinstance(self.decay, OneCycleDecay):
            raise SpecError(
                ("warmup",), "onecycle has its own warm-up (pct_start): remove schedule.warmup"
            )
        return self


def _decay_min_lr(decay: object) -> float | None:
    return getattr(decay, "min_lr", None)
