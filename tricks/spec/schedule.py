"""The schedule section: warm-up and the decay kinds (see tricks.schedules for the maths)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tricks.spec.base import MAX_EPOCHS, SpecError, Strict

# ----------------------------------------------------------------------- schedule


class WarmupSpec(Strict):
    epochs: float | None = Field(
        None,
        ge=0.0,
        le=MAX_EPOCHS,
        description="Warm-up length in epochs (give epochs or steps); 0: no warm-up, as if "
        "absent (so a search can range over it from 0).",
    )
    steps: int | None = Field(
        None, ge=0, le=10_000_000, description="Warm-up length in optimizer steps; 0: none."
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
    step_epochs: int | None = Field(
        None,
        ge=1,
        le=MAX_EPOCHS,
        description="Multiply the lr by gamma every this many epochs (torch StepLR); null "
        "(default) steps every third of training, ceil(epochs / 3): two decays, at 1/3 and 2/3.",
    )
    gamma: float = Field(0.1, gt=0.0, le=1.0)

    def every(self, epochs: int) -> int:
        """step_epochs, or the default for a run of `epochs`: ceil(epochs / 3)."""
        return self.step_epochs if self.step_epochs is not None else max(1, -(-epochs // 3))


class MultiStepDecay(Strict):
    kind: Literal["multistep"] = "multistep"
    milestones: list[Annotated[int, Field(ge=1, le=MAX_EPOCHS)]] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Epochs at which the lr is multiplied by gamma (torch MultiStepLR), "
        "increasing; null (default) decays at 50% and 75% of training, "
        "[floor(epochs/2), floor(3·epochs/4)].",
    )
    gamma: float = Field(0.1, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _increasing(self) -> MultiStepDecay:
        ms = self.milestones or []
        if any(b <= a for a, b in zip(ms, ms[1:], strict=False)):
            raise SpecError(
                ("milestones",), "milestones must be strictly increasing, e.g. [30, 60, 80]"
            )
        return self

    def at(self, epochs: int) -> list[int]:
        """milestones, or the default for a run of `epochs`: 50% and 75% (each ≥ 1, < epochs)."""
        if self.milestones is not None:
            return list(self.milestones)
        return sorted({m for m in (epochs // 2, 3 * epochs // 4) if 1 <= m < epochs})


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
    cycle_momentum: bool = Field(
        True,
        description="Cycle momentum inversely to the lr, max_momentum → base_momentum at the "
        "peak → max_momentum (torch OneCycleLR's default, Smith 2018). It replaces the "
        "optimizer's momentum (sgd) or betas[0] (adam, adamw) at every step.",
    )
    base_momentum: float = Field(
        0.85, ge=0.0, lt=1.0, description="Momentum (or beta1) at the lr peak."
    )
    max_momentum: float = Field(
        0.95, ge=0.0, lt=1.0, description="Momentum (or beta1) at the start and the end."
    )

    @model_validator(mode="after")
    def _momentum_order(self) -> OneCycleDecay:
        if self.cycle_momentum and self.base_momentum > self.max_momentum:
            raise SpecError(
                ("base_momentum",),
                f"base_momentum ({self.base_momentum:g}) is above max_momentum "
                f"({self.max_momentum:g}): momentum falls while the lr rises",
            )
        return self


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
