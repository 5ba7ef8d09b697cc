"""The small models: an MLP, a small CNN and a small ResNet, 1-D or 2-D by input rank.

The ResNet follows He et al., "Deep Residual Learning for Image Recognition"
(CVPR 2016, arXiv:1512.03385) with BasicBlocks; `zero_init_residual` is the
zero-γ trick from He et al., "Bag of Tricks for Image Classification with
Convolutional Neural Networks" (CVPR 2019, arXiv:1812.01187): the last
BatchNorm of every block starts with γ = 0, so each block is the identity
(after the ReLU) at initialization. Every model has a dropout layer (inverted
dropout, Srivastava et al. 2014), an identity when p = 0 or in eval mode.

Inputs: (F,) tabular, (C, L) sequences, (C, H, W) images. Pooling and strides
never shrink a dimension below 1, so 8×8 digits work with any depth.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tricks.models.layers import Dropout, bn_cls, conv_cls, halve, kaiming_convs, zero_last_bns
from tricks.spec import CNNSpec, MLPSpec, ResNetSpec

# ---------------------------------------------------------------------------- mlp


def mlp(spec: MLPSpec, shape: tuple[int, ...], k: int, p: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(shape)
    for h in spec.hidden:
        layers.append(nn.Linear(width, h, bias=not spec.batch_norm))
        if spec.batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers += [nn.ReLU(inplace=True), Dropout(p)]
        width = h
    layers.append(nn.Linear(width, k))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------- cnn


def cnn(spec: CNNSpec, shape: tuple[int, ...], k: int, p: float) -> nn.Sequential:
    dim = len(shape) - 1
    conv, bn = conv_cls(dim), bn_cls(dim)
    pool = nn.MaxPool1d if dim == 1 else nn.MaxPool2d
    c_in, spatial = shape[0], shape[1:]
    layers: list[nn.Module] = []
    for c in spec.channels:
        layers.append(conv(c_in, c, spec.kernel_size, padding="same", bias=not spec.batch_norm))
        if spec.batch_norm:
            layers.append(bn(c))
        layers.append(nn.ReLU(inplace=True))
        factors, spatial = halve(spatial)
        if any(f > 1 for f in factors):
            layers.append(pool(factors if dim == 2 else factors[0]))
        c_in = c
    layers += [
        nn.Flatten(),
        nn.Linear(c_in * math.prod(spatial), spec.hidden),
        nn.ReLU(inplace=True),
        Dropout(p),
        nn.Linear(spec.hidden, k),
    ]
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------- resnet


class BasicBlock(nn.Module):
    """conv3-BN-ReLU-conv3-BN, plus a shortcut (1×1 conv + BN when the shape changes), ReLU."""

    def __init__(self, dim: int, c_in: int, c_out: int, stride: tuple[int, ...]) -> None:
        super().__init__()
        conv, bn = conv_cls(dim), bn_cls(dim)
        s = stride if dim == 2 else stride[0]
        self.conv1 = conv(c_in, c_out, 3, stride=s, padding=1, bias=False)
        self.bn1 = bn(c_out)
        self.conv2 = conv(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = bn(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if c_in != c_out or any(x > 1 for x in stride):
            self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride=s, bias=False), bn(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(
        self, spec: ResNetSpec, shape: tuple[int, ...], num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        dim = len(shape) - 1
        conv, bn = conv_cls(dim), bn_cls(dim)
        w = spec.width
        self.stem = nn.Sequential(
            conv(shape[0], w, 3, padding=1, bias=False), bn(w), nn.ReLU(inplace=True)
        )
        blocks: list[nn.Module] = []
        c_in, spatial = w, shape[1:]
        for i, n in enumerate(spec.blocks):
            c_out = w * 2**i
            for j in range(n):
                stride = (1,) * dim
                if i > 0 and j == 0:
                    stride, spatial = halve(spatial)
                blocks.append(BasicBlock(dim, c_in, c_out, stride))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1)
        self.dropout = Dropout(dropout)
        self.fc = nn.Linear(c_in, num_classes)
        kaiming_convs(self)
        if spec.zero_init_residual:
            zero_last_bns(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))
