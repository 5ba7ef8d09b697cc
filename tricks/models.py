"""Model builders: an MLP, a small CNN and a small ResNet, 1-D or 2-D by input rank.

The ResNet follows He et al., "Deep Residual Learning for Image Recognition"
(CVPR 2016, arXiv:1512.03385) with BasicBlocks; `zero_init_residual` is the
zero-γ trick from He et al., "Bag of Tricks for Image Classification with
Convolutional Neural Networks" (CVPR 2019, arXiv:1812.01187): the last
BatchNorm of every block starts with γ = 0, so each block is the identity
(after the ReLU) at initialization. Every model has a dropout layer (inverted
dropout, Srivastava et al. 2014), an identity when p = 0 or in eval mode: see
`Dropout` for why it is not torch's.

Inputs: (F,) tabular, (C, L) sequences, (C, H, W) images. Pooling and strides
never shrink a dimension below 1, so 8×8 digits work with any depth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from tricks.spec import CNNSpec, MLPSpec, ModelSpec, ResNetSpec


def build_model(
    model: ModelSpec, input_shape: tuple[int, ...], num_classes: int, dropout: float
) -> nn.Module:
    """The nn.Module the spec describes, mapping (N, *input_shape) to (N, num_classes) logits."""
    shape = tuple(int(s) for s in input_shape)
    if isinstance(model, MLPSpec):
        return _mlp(model, shape, num_classes, dropout)
    if len(shape) not in (2, 3):
        raise ValueError(f"{model.arch} needs (C,L) or (C,H,W) inputs, got shape {list(shape)}")
    if isinstance(model, CNNSpec):
        return _cnn(model, shape, num_classes, dropout)
    if isinstance(model, ResNetSpec):
        return ResNet(model, shape, num_classes, dropout)
    raise ValueError(f"unknown model arch {getattr(model, 'arch', model)!r}")


# ------------------------------------------------------------------------ helpers


class Dropout(nn.Dropout):
    """Inverted dropout with drop probability p: x · 1[u ≥ p] / (1 − p), u ~ U[0, 1) per element.

    The same distribution as nn.Dropout (keep with probability 1 − p, kept values
    scaled by 1/(1 − p), the identity in eval mode or when p = 0), drawn from
    torch's global RNG as before, so checkpoints that save that RNG resume
    exactly. Why not nn.Dropout: its CPU kernel fills the mask with
    `bernoulli_`, about 3× slower than `rand_like` compared to p (≈100 µs vs
    ≈35 µs for 64×256 on one core). Random-number generation is still the
    floor of its cost: ≈2 ns per element.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        # the mask in fp32 whatever x is (a bf16 uniform would quantize p to 1/256);
        # ge_/mul_ in place: one allocation for the mask
        mask = torch.rand_like(x, dtype=torch.float32).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * mask.to(x.dtype)


def _conv(dim: int) -> type[nn.Conv1d] | type[nn.Conv2d]:
    return nn.Conv1d if dim == 1 else nn.Conv2d


def _bn(dim: int) -> type[nn.BatchNorm1d] | type[nn.BatchNorm2d]:
    return nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d


def _halve(spatial: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per-dimension factor 2 where the size allows it (>= 2), else 1; and the new sizes."""
    factors = tuple(2 if s >= 2 else 1 for s in spatial)
    return factors, tuple(s // f for s, f in zip(spatial, factors, strict=True))


# ---------------------------------------------------------------------------- mlp


def _mlp(spec: MLPSpec, shape: tuple[int, ...], k: int, p: float) -> nn.Sequential:
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


def _cnn(spec: CNNSpec, shape: tuple[int, ...], k: int, p: float) -> nn.Sequential:
    dim = len(shape) - 1
    conv, bn = _conv(dim), _bn(dim)
    pool = nn.MaxPool1d if dim == 1 else nn.MaxPool2d
    c_in, spatial = shape[0], shape[1:]
    layers: list[nn.Module] = []
    for c in spec.channels:
        layers.append(conv(c_in, c, spec.kernel_size, padding="same", bias=not spec.batch_norm))
        if spec.batch_norm:
            layers.append(bn(c))
        layers.append(nn.ReLU(inplace=True))
        factors, spatial = _halve(spatial)
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
        conv, bn = _conv(dim), _bn(dim)
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
        conv, bn = _conv(dim), _bn(dim)
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
                    stride, spatial = _halve(spatial)
                blocks.append(BasicBlock(dim, c_in, c_out, stride))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1)
        self.dropout = Dropout(dropout)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv1d | nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if spec.zero_init_residual:
            for b in self.blocks:
                assert isinstance(b, BasicBlock)
                nn.init.zeros_(b.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))
