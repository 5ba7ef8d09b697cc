"""The image networks: logits of the right shape, stems, zero-init residuals, airbench's layers.

One forward (and backward) on a batch of 2 small images each; nothing trains.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tricks.models import BasicBlock, build_model
from tricks.models.airbench import Airbench
from tricks.models.resnets import PreActBlock
from tricks.spec import (
    AirbenchSpec,
    DatasetMeta,
    JobSpec,
    PreActResNet18Spec,
    ResNet18Spec,
    ResNet34Spec,
    SpecError,
    WideResNetSpec,
    check_against_dataset,
)

SPECS = {
    "resnet18": ResNet18Spec(),
    "resnet18-imagenet": ResNet18Spec(stem="imagenet"),
    "resnet34": ResNet34Spec(),
    "preact_resnet18": PreActResNet18Spec(),
    "wide_resnet": WideResNetSpec(depth=10, widen_factor=2),
    "airbench": AirbenchSpec(widths=[8, 16, 16]),
}
# one small shape per big net (building and a backward through 11–21M weights is the cost)
CASES = [
    ("resnet18", (3, 16, 16)),
    ("resnet18-imagenet", (3, 16, 16)),
    ("resnet34", (1, 4, 4)),
    ("preact_resnet18", (2, 5, 3)),
    ("wide_resnet", (3, 8, 8)),
    ("wide_resnet", (1, 3, 5)),
    ("airbench", (1, 8, 8)),
    ("airbench", (3, 5, 2)),
]


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_logits_shape_and_gradients(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build_model(SPECS[name], shape, 7, 0.1)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.sum().backward()


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("shape", [(5,), (1, 64)])
def test_non_images_are_refused(name: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(C,H,W\)"):
        build_model(SPECS[name], shape, 3, 0.0)


def test_stems() -> None:
    cifar = build_model(ResNet18Spec(), (3, 32, 32), 10, 0.0)
    imagenet = build_model(ResNet18Spec(stem="imagenet"), (3, 32, 32), 10, 0.0)
    x = torch.randn(1, 3, 32, 32)
    assert cifar.stem(x).shape == (1, 64, 32, 32)  # 3×3, stride 1, no max-pool
    assert imagenet.stem(x).shape == (1, 64, 8, 8)  # 7×7 stride 2, then 3×3 stride-2 max-pool
    assert cifar.stem[0].kernel_size == (3, 3) and imagenet.stem[0].kernel_size == (7, 7)
    assert not any(isinstance(m, nn.MaxPool2d) for m in cifar.modules())


def test_resnet_layouts() -> None:
    def blocks(spec):
        with torch.device("meta"):  # structure only
            model = build_model(spec, (3, 8, 8), 10, 0.0)
        return [m for m in model.modules() if isinstance(m, BasicBlock)]

    assert len(blocks(ResNet18Spec())) == 8 and len(blocks(ResNet34Spec())) == 16
    assert [b.conv2.out_channels for b in blocks(ResNet18Spec())] == [
        64,
        64,
        128,
        128,
        256,
        256,
        512,
        512,
    ]
    with torch.device("meta"):
        wrn = build_model(WideResNetSpec(depth=16, widen_factor=4), (3, 8, 8), 10, 0.3)
    pre = [m for m in wrn.modules() if isinstance(m, PreActBlock)]
    assert [b.conv2.out_channels for b in pre] == [64, 64, 128, 128, 256, 256]
    # the WRN dropout (regularization.dropout) sits inside every block, between the convs
    assert all(b.dropout.p == 0.3 for b in pre)


def test_zero_init_residual_post_activation() -> None:
    spec = ResNet18Spec(stem="imagenet")
    model = build_model(spec, (3, 8, 8), 10, 0.0)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in blocks)
    off = build_model(spec.model_copy(update={"zero_init_residual": False}), (3, 8, 8), 10, 0.0)
    assert all(
        torch.count_nonzero(b.bn2.weight) > 0 for b in off.modules() if isinstance(b, BasicBlock)
    )
    x = torch.randn(4, 64, 8, 8)
    with torch.no_grad():  # an identity-shortcut block is relu(x) at init
        assert torch.equal(blocks[0](x), torch.relu(x))


@pytest.mark.parametrize("spec", [PreActResNet18Spec(), WideResNetSpec(depth=10, widen_factor=1)])
def test_zero_init_residual_pre_activation_starts_as_identity_and_learns(spec) -> None:
    torch.manual_seed(0)
    model = build_model(spec, (3, 8, 8), 10, 0.0)
    blocks = [m for m in model.modules() if isinstance(m, PreActBlock)]
    x = torch.randn(4, blocks[0].bn1.num_features, 8, 8)
    model.train()
    with torch.no_grad():  # the first block has an identity shortcut: it is exactly x
        assert torch.equal(blocks[0](x), x)
    # unlike a zero γ before the last conv, a zero last conv still gets a gradient
    model(torch.randn(4, 3, 8, 8)).logsumexp(1).sum().backward()
    assert all(torch.count_nonzero(b.conv2.weight.grad) > 0 for b in blocks)


def test_airbench_follows_the_reference_layers() -> None:
    model = build_model(AirbenchSpec(), (3, 32, 32), 10, 0.0)
    assert isinstance(model, Airbench)
    assert model.whiten.out_channels == 24 and model.whiten.kernel_size == (2, 2)
    assert [g.conv2.out_channels for g in model.groups] == [64, 256, 256]
    assert model.head.bias is None
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 6 and all(not m.weight.requires_grad and m.bias.requires_grad for m in bns)
    assert all(m.eps == 1e-12 and m.momentum == pytest.approx(0.4) for m in bns)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    feats = {}
    model.pool.register_forward_hook(lambda _m, _i, out: feats.setdefault("pooled", out))
    with torch.no_grad():
        out = model(x)
    assert feats["pooled"].shape == (2, 256, 1, 1)  # 31 → 15 → 7 → 3 → global max
    torch.testing.assert_close(out, model.head(feats["pooled"].flatten(1)) / 9)


@pytest.mark.parametrize(
    ("arch", "kind", "shape", "words"),
    [
        ("resnet18", "tabular", [8], "tabular"),
        ("wide_resnet", "sequence", [1, 64], "sequence"),
        ("airbench", "image", [3, 1, 5], "2×2"),
    ],
)
def test_check_against_dataset_names_model_arch(arch, kind, shape, words) -> None:
    meta = DatasetMeta(id="d1", kind=kind, input_shape=shape, num_classes=3, n_train=100, n_val=20)
    spec = JobSpec(data={"dataset": "d1"}, model={"arch": arch})
    with pytest.raises(SpecError, match=words) as e:
        check_against_dataset(spec, meta)
    assert e.value.loc == ("model", "arch")
    # the same archs pass on images their stems can take
    check_against_dataset(spec, meta.model_copy(update={"kind": "image", "input_shape": [3, 2, 2]}))
