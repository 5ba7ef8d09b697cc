"""Wide Residual Networks, WRN-d-k, for (C, H, W) images.

Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016, arXiv:1605.07146): a 3×3
conv to 16 channels, three groups of (d − 4)/6 pre-activation basic blocks (BN-ReLU-conv3,
BN-ReLU, dropout, conv3) with 16k, 32k and 64k channels and strides 1, 2, 2, then BN-ReLU,
global average pooling and a linear classifier. Shortcuts are a bare 1×1 conv where the
shape changes (the authors' code, szagoruyko/wide-residual-networks). Dropout between the
convs is the job's regularization.dropout (the paper's 0.3 for CIFAR); there is none before
the classifier. WRN-28-10 has 36,479,194 parameters for 10 classes.
"""

from __future__ import annotations

import torch
from torch import nn

from tricks.models.layers import kaiming_convs
from tricks.models.resnets import PreActBlock, zero_last_convs
from tricks.spec import WideResNetSpec


class WideResNet(nn.Module):
    def __init__(self, spec: WideResNetSpec, c_in: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        n, k = (spec.depth - 4) // 6, spec.widen_factor
        self.stem = nn.Conv2d(c_in, 16, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        c = 16
        for width, stride in ((16 * k, 1), (32 * k, 2), (64 * k, 2)):
            for j in range(n):
                blocks.append(PreActBlock(c, width, stride if j == 0 else 1, dropout))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(c, num_classes)
        kaiming_convs(self)
        if spec.zero_init_residual:
            zero_last_convs(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(x, 1))
