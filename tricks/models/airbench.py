"""airbench94: Keller Jordan's fast CIFAR-10 network, for (C, H, W) images.

Followed: `make_net` and its layers in legacy/airbench94.py of
github.com/KellerJordan/cifar10-airbench (Jordan, "94% on CIFAR-10 in 3.29 Seconds on a
Single GPU", arXiv:2404.00498): a 2×2 conv stem (padding 0, with bias) to 2·C·2² = 24
channels for RGB, GELU; three ConvGroups, each conv3-maxpool2-BN-GELU-conv3-BN-GELU, with
64, 256, 256 channels; a max-pool to 1×1; a bias-free linear head; logits × 1/9. Its convs
start as partial identities (`dirac_` on the first C_in filters), its BatchNorms have
eps 1e-12, momentum 0.4 (torch's convention for the reference's 0.6) and a γ fixed at 1
(only β trains).

Differences: the reference sets the stem's weights from the training images' patch
whitening (eigenvectors of their 2×2 patch covariance) and freezes them; here it is a
plain learnable conv, because the model is built before the data is seen. The final
MaxPool2d(3) of the reference (on 3×3 maps for 32×32 inputs) is an adaptive max-pool to
1×1, the same there and valid for other sizes; the max-pools never halve a side of 1.
A dropout layer (regularization.dropout, identity at 0) precedes the head. The reference
also trains in fp16 channels_last with lookahead and label smoothing: that is the job
spec's and the worker's business, not the model's.
"""

from __future__ import annotations

import torch
from torch import nn

from tricks.models.layers import Dropout, halve
from tricks.spec import AirbenchSpec

BN_MOMENTUM = 0.4  # torch's momentum = 1 − the reference's 0.6
SCALE = 1 / 9


class Conv(nn.Conv2d):
    """A bias-free 'same' 3×3 conv whose first C_in filters start as the identity (dirac)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 3, padding="same", bias=False)
        nn.init.dirac_(self.weight.data[: min(c_in, c_out)])


class BatchNorm(nn.BatchNorm2d):
    """BatchNorm with γ fixed at 1 (not trained) and a learnable β, eps 1e-12."""

    def __init__(self, c: int) -> None:
        super().__init__(c, eps=1e-12, momentum=BN_MOMENTUM)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = Conv(c_in, c_out)
        self.pool = nn.MaxPool2d(pool) if max(pool) > 1 else nn.Identity()
        self.norm1 = BatchNorm(c_out)
        self.conv2 = Conv(c_out, c_out)
        self.norm2 = BatchNorm(c_out)
        self.activ = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class Airbench(nn.Module):
    def __init__(
        self,
        spec: AirbenchSpec,
        shape: tuple[int, ...],
        num_classes: int,
        dropout: float,
    ) -> None:
        super().__init__()
        c_in, spatial = shape[0], tuple(s - 1 for s in shape[1:])  # the 2×2 stem, padding 0
        whiten = 2 * c_in * 2 * 2
        self.whiten = nn.Conv2d(c_in, whiten, 2, padding=0, bias=True)
        assert self.whiten.bias is not None
        nn.init.zeros_(self.whiten.bias)
        groups: list[nn.Module] = []
        c = whiten
        for width in spec.widths:
            factors, spatial = halve(spatial)
            groups.append(ConvGroup(c, width, (factors[0], factors[1])))
            c = width
        self.groups = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.dropout = Dropout(dropout)
        self.head = nn.Linear(c, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(nn.functional.gelu(self.whiten(x)))
        x = torch.flatten(self.pool(x), 1)
        return self.head(self.dropout(x)) * SCALE
