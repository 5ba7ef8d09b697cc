"""Model builders: `build_model(spec.model, input_shape, num_classes, dropout)`.

One module per family, each citing its paper: `small` (the MLP, the small CNN and the
small 1-D/2-D ResNet), `resnets` (ResNet-18/34, pre-activation ResNet-18), `wide_resnet`
(WRN-d-k), `airbench` (airbench94); `layers` holds inverted dropout and conv helpers.
Their parameter counts, computed without torch for the API's plan, are `tricks.params`.

Inputs: (F,) tabular, (C, L) sequences, (C, H, W) images; the image-only archs
(`tricks.spec.IMAGE_ARCHS`) take (C, H, W) only.
"""

from __future__ import annotations

from torch import nn

from tricks.models.airbench import Airbench
from tricks.models.layers import Dropout
from tricks.models.resnets import PreActResNet18, ResNetImage
from tricks.models.small import BasicBlock, ResNet, cnn, mlp
from tricks.models.wide_resnet import WideResNet
from tricks.spec import (
    IMAGE_ARCHS,
    AirbenchSpec,
    CNNSpec,
    MLPSpec,
    ModelSpec,
    PreActResNet18Spec,
    ResNet18Spec,
    ResNet34Spec,
    ResNetSpec,
    WideResNetSpec,
)

__all__ = ["BasicBlock", "Dropout", "ResNet", "build_model"]


def build_model(
    model: ModelSpec, input_shape: tuple[int, ...], num_classes: int, dropout: float
) -> nn.Module:
    """The nn.Module the spec describes, mapping (N, *input_shape) to (N, num_classes) logits."""
    shape = tuple(int(s) for s in input_shape)
    if isinstance(model, MLPSpec):
        return mlp(model, shape, num_classes, dropout)
    if model.arch in IMAGE_ARCHS and len(shape) != 3:
        raise ValueError(f"{model.arch} needs (C,H,W) image inputs, got shape {list(shape)}")
    if len(shape) not in (2, 3):
        raise ValueError(f"{model.arch} needs (C,L) or (C,H,W) inputs, got shape {list(shape)}")
    if isinstance(model, CNNSpec):
        return cnn(model, shape, num_classes, dropout)
    if isinstance(model, ResNetSpec):
        return ResNet(model, shape, num_classes, dropout)
    if isinstance(model, ResNet18Spec | ResNet34Spec):
        return ResNetImage(model, shape[0], num_classes, dropout)
    if isinstance(model, PreActResNet18Spec):
        return PreActResNet18(model, shape[0], num_classes, dropout)
    if isinstance(model, WideResNetSpec):
        return WideResNet(model, shape[0], num_classes, dropout)
    if isinstance(model, AirbenchSpec):
        return Airbench(model, shape, num_classes, dropout)
    raise ValueError(f"unknown model arch {getattr(model, 'arch', model)!r}")
