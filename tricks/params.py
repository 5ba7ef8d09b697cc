"""Trainable parameter counts of every model spec, in pure Python (no torch).

The API reports `plan.parameters` before a job is queued; it must not import torch, so
each arch's count is written out here layer by layer, mirroring `tricks.models`.
`tests/tricks/test_params.py` checks every arch against torch's
`sum(p.numel() for p in model.parameters() if p.requires_grad)` over several shapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tricks.spec import (
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


def count_parameters(model: ModelSpec, input_shape: Sequence[int], num_classes: int) -> int:
    """Trainable parameters of build_model(model, input_shape, num_classes, ·)."""
    shape, k = tuple(int(s) for s in input_shape), int(num_classes)
    if isinstance(model, MLPSpec):
        return _mlp(model, shape, k)
    if isinstance(model, CNNSpec):
        return _cnn(model, shape, k)
    if isinstance(model, ResNetSpec):
        return _small_resnet(model, shape, k)
    if isinstance(model, ResNet18Spec | ResNet34Spec):
        return _resnet(model, shape[0], k)
    if isinstance(model, PreActResNet18Spec):
        return _preact_resnet18(model, shape[0], k)
    if isinstance(model, WideResNetSpec):
        return _wide_resnet(model, shape[0], k)
    if isinstance(model, AirbenchSpec):
        return _airbench(model, shape[0], k)
    raise ValueError(f"unknown model arch {getattr(model, 'arch', model)!r}")


# ------------------------------------------------------------------------ layers


def conv(c_in: int, c_out: int, kernel: int, dim: int = 2, bias: bool = False) -> int:
    return c_in * c_out * kernel**dim + (c_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # γ and β; the running statistics are buffers


def linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _halved(spatial: Sequence[int]) -> tuple[int, ...]:
    """tricks.models.layers.halve: a side of 1 stays 1."""
    return tuple(s // 2 if s >= 2 else s for s in spatial)


# --------------------------------------------------------------- the small models


def _mlp(spec: MLPSpec, shape: tuple[int, ...], k: int) -> int:
    n, width = 0, math.prod(shape)
    for h in spec.hidden:
        n += linear(width, h, bias=not spec.batch_norm) + (bn(h) if spec.batch_norm else 0)
        width = h
    return n + linear(width, k)


def _cnn(spec: CNNSpec, shape: tuple[int, ...], k: int) -> int:
    dim, c_in, spatial = len(shape) - 1, shape[0], shape[1:]
    n = 0
    for c in spec.channels:
        n += conv(c_in, c, spec.kernel_size, dim, bias=not spec.batch_norm)
        n += bn(c) if spec.batch_norm else 0
        spatial, c_in = _halved(spatial), c
    return n + linear(c_in * math.prod(spatial), spec.hidden) + linear(spec.hidden, k)


def _basic_block(c_in: int, c_out: int, dim: int, downsample: bool) -> int:
    """conv3-BN-conv3-BN, plus a 1×1 conv + BN shortcut when the shape changes."""
    n = conv(c_in, c_out, 3, dim) + bn(c_out) + conv(c_out, c_out, 3, dim) + bn(c_out)
    if c_in != c_out or downsample:
        n += conv(c_in, c_out, 1, dim) + bn(c_out)
    return n


def _small_resnet(spec: ResNetSpec, shape: tuple[int, ...], k: int) -> int:
    dim, w, spatial = len(shape) - 1, spec.width, shape[1:]
    n = conv(shape[0], w, 3, dim) + bn(w)
    c_in = w
    for i, blocks in enumerate(spec.blocks):
        c_out = w * 2**i
        for j in range(blocks):
            downsample = False
            if i > 0 and j == 0:
                downsample = any(s >= 2 for s in spatial)
                spatial = _halved(spatial)
            n += _basic_block(c_in, c_out, dim, downsample)
            c_in = c_out
    return n + linear(c_in, k)


# ------------------------------------------------------------ the image networks

_WIDTHS = (64, 128, 256, 512)
_LAYOUT = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "preact_resnet18": (2, 2, 2, 2)}


def _stem(c_in: int, kind: str, norm: bool = True) -> int:
    if kind == "cifar":
        return conv(c_in, 64, 3) + (bn(64) if norm else 0)
    return conv(c_in, 64, 7) + bn(64)


def _resnet(spec: ResNet18Spec | ResNet34Spec, c_in: int, k: int) -> int:
    n, c = _stem(c_in, spec.stem), 64
    for i, (width, blocks) in enumerate(zip(_WIDTHS, _LAYOUT[spec.arch], strict=True)):
        for j in range(blocks):
            n += _basic_block(c, width, 2, downsample=i > 0 and j == 0)
            c = width
    return n + linear(c, k)


def _preact_block(c_in: int, c_out: int, stride: int) -> int:
    """BN-conv3-BN-conv3, plus a bare 1×1 conv shortcut when the shape changes."""
    n = bn(c_in) + conv(c_in, c_out, 3) + bn(c_out) + conv(c_out, c_out, 3)
    return n + (conv(c_in, c_out, 1) if c_in != c_out or stride != 1 else 0)


def _preact_resnet18(spec: PreActResNet18Spec, c_in: int, k: int) -> int:
    n, c = _stem(c_in, spec.stem, norm=False), 64
    for i, (width, blocks) in enumerate(zip(_WIDTHS, _LAYOUT[spec.arch], strict=True)):
        for j in range(blocks):
            n += _preact_block(c, width, 2 if i > 0 and j == 0 else 1)
            c = width
    return n + bn(c) + linear(c, k)


def _wide_resnet(spec: WideResNetSpec, c_in: int, k: int) -> int:
    blocks, w = (spec.depth - 4) // 6, spec.widen_factor
    n, c = conv(c_in, 16, 3), 16
    for width, stride in ((16 * w, 1), (32 * w, 2), (64 * w, 2)):
        for j in range(blocks):
            n += _preact_block(c, width, stride if j == 0 else 1)
            c = width
    return n + bn(c) + linear(c, k)


def _airbench(spec: AirbenchSpec, c_in: int, k: int) -> int:
    whiten = 2 * c_in * 2 * 2
    n, c = conv(c_in, whiten, 2, bias=True), whiten
    for width in spec.widths:
        # BatchNorm γ is frozen: only β (width) trains
        n += conv(c, width, 3) + width + conv(width, width, 3) + width
        c = width
    return n + linear(c, k, bias=False)
