"""The data, model and optimizer sections of the job spec."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tricks.spec.base import SpecError, Strict
from tricks.spec.image_archs import (
    AirbenchSpec,
    PreActResNet18Spec,
    ResNet18Spec,
    ResNet34Spec,
    WideResNetSpec,
)

# --------------------------------------------------------------------------- data


class DataSpec(Strict):
    dataset: str = Field(
        min_length=1,
        max_length=64,
        description="Built-in name (`digits`, `moons`, `spirals`, `blobs`, `waves`) or the id of an uploaded dataset (GET /datasets lists both).",
    )
    val_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=0.9,
        description="Share of the data held out for validation when the dataset has no x_val/y_val. 0.1–0.2 is usual.",
    )
    standardize: bool = Field(
        True, description="Standardize features with mean/std fitted on the training split only."
    )


# -------------------------------------------------------------------------- model


class MLPSpec(Strict):
    arch: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(ge=1, le=8192)]] = Field(
        default_factory=lambda: [256, 128],
        max_length=16,
        description="Widths of the hidden layers. Inputs of any shape are flattened.",
    )
    batch_norm: bool = Field(
        True,
        description="BatchNorm after each hidden linear layer (on by default: digits reaches ≥ 97% on every seed).",
    )


class CNNSpec(Strict):
    arch: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [32, 64],
        min_length=1,
        max_length=8,
        description="Output channels of each conv block. (C,L) inputs use Conv1d, (C,H,W) use Conv2d.",
    )
    kernel_size: int = Field(
        3, ge=1, le=15, description="Odd sizes keep the spatial size ('same' padding)."
    )
    hidden: int = Field(
        128, ge=1, le=8192, description="Width of the dense layer before the classifier."
    )
    batch_norm: bool = Field(True, description="BatchNorm after each convolution.")


class ResNetSpec(Strict):
    arch: Literal["resnet"] = "resnet"
    width: int = Field(
        32, ge=4, le=512, description="Channels of the first stage; each stage doubles it."
    )
    blocks: list[Annotated[int, Field(ge=1, le=16)]] = Field(
        default_factory=lambda: [1, 1],
        min_length=1,
        max_length=4,
        description="Residual blocks per stage; stages after the first downsample by 2.",
    )
    zero_init_residual: bool = Field(
        True,
        description="Zero-init the last BatchNorm gamma in each block so every block starts as the identity (Bag of Tricks).",
    )


ModelSpec = Annotated[
    MLPSpec
    | CNNSpec
    | ResNetSpec
    | ResNet18Spec
    | ResNet34Spec
    | PreActResNet18Spec
    | WideResNetSpec
    | AirbenchSpec,
    Field(discriminator="arch"),
]


# ---------------------------------------------------------------------- optimizer


class _OptBase(Strict):
    weight_decay: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="torch semantics: coupled (added to the gradient) for sgd/adam, decoupled for adamw.",
    )
    no_bias_decay: bool = Field(
        True,
        description="Exempt biases and normalization parameters from weight decay (Bag of Tricks).",
    )


class SGDSpec(_OptBase):
    name: Literal["sgd"] = "sgd"
    lr: float = Field(
        0.05,
        gt=0.0,
        le=100.0,
        description="Peak learning rate lr0. 0.1 × batch/256 is the linear-scaling rule.",
    )
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    weight_decay: float = Field(
        5e-4, ge=0.0, le=1.0, description="Coupled L2 added to the gradient; 5e-4 to 1e-4 is usual."
    )

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDSpec:
        if self.nesterov and self.momentum == 0:
            raise SpecError(
                ("nesterov",),
                "nesterov needs momentum > 0: set momentum (e.g. 0.9) or nesterov false",
            )
        return self


class AdamSpec(_OptBase):
    name: Literal["adam"] = "adam"
    lr: float = Field(
        1e-3, gt=0.0, le=100.0, description="Peak learning rate; 1e-3 is Adam's usual default."
    )
    betas: tuple[
        Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]
    ] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0, le=1.0)


class AdamWSpec(AdamSpec):
    name: Literal["adamw"] = "adamw"  # type: ignore[assignment]
    weight_decay: float = Field(
        0.01, ge=0.0, le=1.0, description="Decoupled weight decay (AdamW); 0.01–0.1 is usual."
    )


OptimizerSpec = Annotated[SGDSpec | AdamSpec | AdamWSpec, Field(discriminator="name")]
