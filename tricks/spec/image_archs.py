"""The image-only model specs: ResNet-18/34, pre-activation ResNet-18, Wide ResNet, airbench.

Each one takes (C, H, W) images; `check_against_dataset` rejects other data at
`model.arch`. The builders are in `tricks.models`, the parameter counts in `tricks.params`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tricks.spec.base import SpecError, Strict

# arch names that need (C, H, W) inputs
IMAGE_ARCHS = ("resnet18", "resnet34", "preact_resnet18", "wide_resnet", "airbench")

_ZERO_INIT = (
    "Start every residual branch at zero so each block is the identity (Goyal et al. 2017; "
    "Bag of Tricks). Post-activation blocks zero the last BatchNorm's γ; pre-activation "
    "blocks, whose branch ends in a conv, zero that conv's weight (a zero γ there would "
    "freeze the branch: ReLU'(0) = 0)."
)
_STEM = (
    "`cifar`: 3×3 conv, stride 1, no max-pool (for 32×32 inputs). `imagenet`: 7×7 stride-2 "
    "conv and a 3×3 stride-2 max-pool, which shrink H and W by 4 (for 64×64 and larger)."
)


class _ImageResNet(Strict):
    stem: Literal["cifar", "imagenet"] = Field("cifar", description=_STEM)
    zero_init_residual: bool = Field(True, description=_ZERO_INIT)


class ResNet18Spec(_ImageResNet):
    """ResNet-18 (He et al. 2016): BasicBlocks [2, 2, 2, 2], widths 64-128-256-512, BatchNorm,
    global average pooling, dropout (regularization.dropout), fc. 11.2M parameters on CIFAR-10."""

    arch: Literal["resnet18"] = "resnet18"


class ResNet34Spec(_ImageResNet):
    """ResNet-34 (He et al. 2016): BasicBlocks [3, 4, 6, 3], widths 64-128-256-512, BatchNorm,
    global average pooling, dropout (regularization.dropout), fc. 21.3M parameters on CIFAR-10."""

    arch: Literal["resnet34"] = "resnet34"


class PreActResNet18Spec(_ImageResNet):
    """Pre-activation ResNet-18 (He et al. 2016, "Identity Mappings in Deep Residual Networks"):
    BN-ReLU before each conv, a final BN-ReLU, global average pooling, dropout, fc."""

    arch: Literal["preact_resnet18"] = "preact_resnet18"


class WideResNetSpec(Strict):
    """WRN-d-k (Zagoruyko & Komodakis 2016): a 3×3 conv to 16 channels, three groups of
    (d − 4)/6 pre-activation blocks with 16k, 32k, 64k channels (strides 1, 2, 2), BN-ReLU,
    global average pooling, fc. regularization.dropout is applied between the two convs of
    each block (the paper uses 0.3), not before the classifier."""

    arch: Literal["wide_resnet"] = "wide_resnet"
    depth: int = Field(
        28,
        ge=10,
        le=100,
        description="Depth d of WRN-d-k; (d − 4) must be divisible by 6: 10, 16, 22, 28, 34, 40, ...",
    )
    widen_factor: int = Field(
        10,
        ge=1,
        le=16,
        description="Width multiplier k: the groups have 16k, 32k and 64k channels (WRN-28-10 has 36.5M parameters; WRN-16-4 2.7M).",
    )
    zero_init_residual: bool = Field(True, description=_ZERO_INIT)

    @model_validator(mode="after")
    def _depth_fits_blocks(self) -> WideResNetSpec:
        if (self.depth - 4) % 6 != 0:
            lo = self.depth - (self.depth - 4) % 6
            raise SpecError(
                ("depth",),
                f"wide_resnet depth {self.depth} does not give whole blocks: (depth − 4) must be "
                f"divisible by 6; use {lo} or {lo + 6}",
            )
        return self


class AirbenchSpec(Strict):
    """airbench94 (Keller Jordan, github.com/KellerJordan/cifar10-airbench): a 2×2 conv stem
    with 2·C·4 channels (learnable here, not data-whitened), three ConvGroups
    (conv-pool-BN-GELU-conv-BN-GELU), global max-pool, dropout, a bias-free linear head
    scaled by 1/9. BatchNorm γ is fixed at 1 (only β trains), as in the reference."""

    arch: Literal["airbench"] = "airbench"
    widths: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [64, 256, 256],
        min_length=3,
        max_length=3,
        description="Channels of the three ConvGroups (block1, block2, block3); airbench94 uses 64, 256, 256.",
    )
