"""tricks.params (no torch) against torch's own count, for every arch over shapes and classes.

The oracle is `sum(p.numel() for p in model.parameters() if p.requires_grad)` on the
module build_model returns (built on the meta device: no memory, no init cost), plus
hand-computed totals for ResNet-18 on CIFAR-10 and WRN-28-10.
"""

from __future__ import annotations

import pytest
import torch

from tricks.models import build_model
from tricks.params import count_parameters
from tricks.spec import (
    AirbenchSpec,
    CNNSpec,
    MLPSpec,
    PreActResNet18Spec,
    ResNet18Spec,
    ResNet34Spec,
    ResNetSpec,
    WideResNetSpec,
)

IMAGES = [(3, 32, 32), (1, 8, 8), (4, 13, 20), (3, 2, 2), (3, 64, 64)]
ANY_RANK = [(5,), (2, 64), (1, 7), *IMAGES]
CLASSES = [2, 10, 100]

SPECS = {
    "mlp": (MLPSpec(hidden=[16, 8], batch_norm=True), ANY_RANK),
    "mlp-no-bn": (MLPSpec(hidden=[7], batch_norm=False), ANY_RANK),
    "cnn": (CNNSpec(channels=[4, 8, 8, 8], hidden=16), ANY_RANK[1:]),
    "cnn-even-kernel": (
        CNNSpec(channels=[3], kernel_size=4, hidden=8, batch_norm=False),
        ANY_RANK[1:],
    ),
    "resnet": (ResNetSpec(width=4, blocks=[1, 1, 2, 1]), ANY_RANK[1:]),
    "resnet-default": (ResNetSpec(), ANY_RANK[1:]),
    "resnet18": (ResNet18Spec(), IMAGES),
    "resnet18-imagenet": (ResNet18Spec(stem="imagenet"), IMAGES),
    "resnet34": (ResNet34Spec(), IMAGES),
    "resnet34-imagenet": (ResNet34Spec(stem="imagenet"), IMAGES),
    "preact_resnet18": (PreActResNet18Spec(), IMAGES),
    "preact_resnet18-imagenet": (PreActResNet18Spec(stem="imagenet"), IMAGES),
    "wide_resnet-28-10": (WideResNetSpec(depth=28, widen_factor=10), IMAGES),
    "wide_resnet-10-1": (WideResNetSpec(depth=10, widen_factor=1), IMAGES),  # identity shortcut
    "wide_resnet-16-4": (WideResNetSpec(depth=16, widen_factor=4), IMAGES),
    "airbench": (AirbenchSpec(), IMAGES),
    "airbench-narrow": (AirbenchSpec(widths=[8, 4, 16]), IMAGES),
}


def torch_count(spec, shape, k) -> int:
    with torch.device("meta"):
        model = build_model(spec, shape, k, 0.1)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_count_matches_torch(name: str) -> None:
    spec, shapes = SPECS[name]
    for shape in shapes:
        for k in CLASSES:
            assert count_parameters(spec, shape, k) == torch_count(spec, shape, k), (shape, k)


def test_hand_oracles() -> None:
    # ResNet-18, CIFAR variant, 10 classes: the widely quoted 11,173,962 (kuangliu/pytorch-cifar)
    assert count_parameters(ResNet18Spec(), (3, 32, 32), 10) == 11_173_962
    # the 1-channel stem has 9·64 instead of 27·64 weights
    assert count_parameters(ResNet18Spec(), (1, 8, 8), 10) == 11_173_962 - 18 * 64
    # WRN-28-10 on CIFAR-10: 36.5M (Zagoruyko & Komodakis 2016, Table 1)
    assert count_parameters(WideResNetSpec(), (3, 32, 32), 10) == 36_479_194
    # MLP 5 → 4 (BN) → 3: 5·4 + 2·4 + 4·3 + 3
    assert count_parameters(MLPSpec(hidden=[4]), (5,), 3) == 20 + 8 + 12 + 3


def test_params_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, tricks.params; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
