"""ResNet-18/34 and pre-activation ResNet-18 for (C, H, W) images.

ResNet-18/34: He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016,
arXiv:1512.03385), BasicBlocks [2, 2, 2, 2] / [3, 4, 6, 3] with widths 64-128-256-512
and 1×1 conv + BN projection shortcuts, as torchvision builds them. The `cifar` stem
(3×3 conv, stride 1, no max-pool) is the usual CIFAR variant (e.g. kuangliu/pytorch-cifar:
11,173,962 parameters for 10 classes); `imagenet` is the paper's 7×7 stride-2 conv and
3×3 stride-2 max-pool.

Pre-activation ResNet-18: He et al., "Identity Mappings in Deep Residual Networks"
(ECCV 2016, arXiv:1603.05027): BN-ReLU before each conv, projection shortcuts of a bare
1×1 conv on the pre-activated input, and a final BN-ReLU before pooling.

`zero_init_residual` (Goyal et al., "Accurate, Large Minibatch SGD", arXiv:1706.02677):
post-activation blocks start with the last BN's γ = 0. A pre-activation branch ends in a
conv, and a zero γ before it would give ReLU(0) = 0 with zero gradient, freezing the
branch for good; so that conv's weight starts at 0 instead (timm's `zero_init_last`).
"""

from __future__ import annotations

import torch
from torch import nn

from tricks.models.layers import Dropout, kaiming_convs, zero_last_bns
from tricks.models.small import BasicBlock
from tricks.spec import PreActResNet18Spec, ResNet18Spec, ResNet34Spec

WIDTHS = (64, 128, 256, 512)
LAYOUT = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "preact_resnet18": (2, 2, 2, 2)}


def stem(c_in: int, kind: str, *, norm: bool = True) -> nn.Sequential:
    """The first conv to 64 channels: 3×3 stride 1 (`cifar`; BN-ReLU unless `norm` is off)
    or 7×7 stride 2, BN-ReLU and a 3×3 stride-2 max-pool (`imagenet`, also for pre-activation
    nets, as fb.resnet.torch's preresnet builds it)."""
    if kind == "cifar":
        conv = nn.Conv2d(c_in, 64, 3, padding=1, bias=False)
        if not norm:
            return nn.Sequential(conv)
        return nn.Sequential(conv, nn.BatchNorm2d(64), nn.ReLU(inplace=True))
    return nn.Sequential(
        nn.Conv2d(c_in, 64, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


class ResNetImage(nn.Module):
    """ResNet-18 or ResNet-34: stem, four stages of BasicBlocks, average pool, dropout, fc."""

    def __init__(
        self, spec: ResNet18Spec | ResNet34Spec, c_in: int, num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        self.stem = stem(c_in, spec.stem)
        blocks: list[nn.Module] = []
        c = 64
        for i, (width, n) in enumerate(zip(WIDTHS, LAYOUT[spec.arch], strict=True)):
            for j in range(n):
                stride = (2, 2) if i > 0 and j == 0 else (1, 1)
                blocks.append(BasicBlock(2, c, width, stride))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        kaiming_convs(self)
        if spec.zero_init_residual:
            zero_last_bns(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


class PreActBlock(nn.Module):
    """BN-ReLU-conv3(stride)-BN-ReLU-[dropout]-conv3, plus x or a 1×1 conv of the pre-activation.

    `dropout` sits between the two convs (Wide ResNets); ResNet-18 passes 0."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.dropout = Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module | None = None
        if c_in != c_out or stride != 1:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + skip


class PreActResNet18(nn.Module):
    """Stem conv, four stages of PreActBlocks, BN-ReLU, average pool, dropout, fc."""

    def __init__(
        self, spec: PreActResNet18Spec, c_in: int, num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        # the CIFAR stem is a bare conv: the first block pre-activates its output
        self.stem = stem(c_in, spec.stem, norm=False)
        blocks: list[nn.Module] = []
        c = 64
        for i, (width, n) in enumerate(zip(WIDTHS, LAYOUT[spec.arch], strict=True)):
            for j in range(n):
                blocks.append(PreActBlock(c, width, 2 if i > 0 and j == 0 else 1))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1))
        self.dropout = Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        kaiming_convs(self)
        if spec.zero_init_residual:
            zero_last_convs(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.dropout(torch.flatten(x, 1)))


def zero_last_convs(blocks: nn.Module) -> None:
    """zero_init_residual for pre-activation blocks: each branch's last conv starts at 0."""
    for b in blocks.modules():
        if isinstance(b, PreActBlock):
            nn.init.zeros_(b.conv2.weight)
