"""Every architecture gives (N, K) logits; zero-γ blocks start as the identity; dropout semantics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tricks.models import BasicBlock, build_model
from tricks.models import layers as layers_mod
from tricks.models.layers import Dropout, dropouts, keep_mask, keep_probability, plan_masks
from tricks.spec import CNNSpec, MLPSpec, ResNetSpec

SHAPES = {"image": (1, 8, 8), "sequence": (1, 64), "tabular": (5,), "tiny-image": (3, 2, 2)}
SPECS = {
    "mlp": MLPSpec(hidden=[16, 8], batch_norm=True),
    "cnn": CNNSpec(channels=[4, 8, 8, 8], hidden=16),  # 4 poolings: 8×8 must stop at 1×1
    "cnn-even-kernel": CNNSpec(channels=[4], kernel_size=4, hidden=8, batch_norm=False),
    "resnet": ResNetSpec(width=4, blocks=[1, 1, 2, 1]),
}


@pytest.mark.parametrize("arch", sorted(SPECS))
@pytest.mark.parametrize("data", sorted(SHAPES))
def test_logits_shape(arch: str, data: str) -> None:
    shape = SHAPES[data]
    if data == "tabular" and not arch.startswith("mlp"):
        with pytest.raises(ValueError, match="tabular|inputs"):
            build_model(SPECS[arch], shape, 3, 0.1)
        return
    torch.manual_seed(0)
    model = build_model(SPECS[arch], shape, 3, 0.1)
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    out.sum().backward()


def _blocks(model: nn.Module) -> list[BasicBlock]:
    return [m for m in model.modules() if isinstance(m, BasicBlock)]


@pytest.mark.parametrize("shape", [(2, 8, 8), (2, 64)])
def test_zero_init_residual_blocks_start_as_identity(shape: tuple) -> None:
    torch.manual_seed(0)
    model = build_model(ResNetSpec(width=4, blocks=[2, 1]), shape, 3, 0.0)
    blocks = _blocks(model)
    assert len(blocks) == 3
    for block in blocks:
        assert torch.count_nonzero(block.bn2.weight) == 0
        assert torch.count_nonzero(block.bn1.weight) == block.bn1.weight.numel()
    model.train()
    x = torch.randn(5, 4 * 1, *shape[1:])
    for block in blocks:
        c_in = block.conv1.in_channels
        x = torch.randn(5, c_in, *shape[1:])
        with torch.no_grad():
            torch.testing.assert_close(block(x), torch.relu(block.shortcut(x)))
    # the first block has an identity shortcut: the block is exactly relu(x)
    x = torch.randn(5, 4, *shape[1:])
    with torch.no_grad():
        assert torch.equal(blocks[0](x), torch.relu(x))


def test_without_zero_init_blocks_are_not_identity() -> None:
    model = build_model(ResNetSpec(width=4, zero_init_residual=False), (1, 8, 8), 3, 0.0)
    assert all(torch.count_nonzero(b.bn2.weight) > 0 for b in _blocks(model))


def test_resnet_stages_double_width_and_downsample() -> None:
    model = build_model(ResNetSpec(width=4, blocks=[1, 1, 1]), (1, 8, 8), 3, 0.0)
    blocks = _blocks(model)
    assert [b.conv2.out_channels for b in blocks] == [4, 8, 16]
    x = torch.randn(2, 1, 8, 8)
    sizes = []
    h = model.stem(x)
    for b in blocks:
        h = b(h)
        sizes.append(h.shape[-1])
    assert sizes == [8, 4, 2]


@pytest.mark.parametrize("arch", ["mlp", "cnn", "resnet"])
def test_every_model_has_dropout(arch: str) -> None:
    model = build_model(SPECS[arch], (1, 8, 8), 3, 0.3)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert all(m.p == 0.3 for m in model.modules() if isinstance(m, nn.Dropout))


def test_dropout_identity_in_eval_and_inverted_in_train() -> None:
    p = 0.3
    model = build_model(MLPSpec(hidden=[4096]), (8,), 2, p)
    drop = next(m for m in model.modules() if isinstance(m, nn.Dropout))
    x = torch.ones(64, 4096)
    drop.eval()
    assert torch.equal(drop(x), x)
    drop.train()
    torch.manual_seed(0)
    y = drop(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    # the whole model is deterministic in eval mode
    model.eval()
    z = torch.randn(3, 8)
    assert torch.equal(model(z), model(z))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(64, 4096), (4096, 63), (512, 3, 5, 7)])
def test_dropout_keeps_each_element_with_probability_one_minus_p(p: float, shape) -> None:
    # Oracle: Bernoulli(1 − p) per element. The count of kept elements is Binomial(n, q),
    # q = 1 − p to within 2⁻¹⁷ (the 16-bit quantization); 5 standard deviations. Each of
    # the 4 int16 lanes of a 64-bit draw (position mod 4 along the last axis) on its own,
    # so a biased lane (say a sign bit never set) cannot hide in the mean.
    drop = Dropout(p)
    torch.manual_seed(1)
    y = drop(torch.ones(shape))
    assert y.shape == shape
    kept = y != 0
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)), rtol=0, atol=0)
    assert abs(keep_probability(p) - (1 - p)) <= 2**-17
    q = 1 - p
    lanes = kept.reshape(-1, shape[-1]) if shape[-1] % 4 == 0 else None
    groups = [kept.reshape(-1)] + ([lanes[:, i::4] for i in range(4)] if lanes is not None else [])
    for g in groups:
        n = g.numel()
        assert abs(g.sum().item() - n * q) <= 5 * math.sqrt(n * q * (1 - q)) + n * 2**-17


def test_dropout_masks_differ_between_calls_and_follow_the_global_seed() -> None:
    drop, x = Dropout(0.5), torch.ones(8, 64)
    torch.manual_seed(3)
    a, b = drop(x), drop(x)
    torch.manual_seed(3)
    assert not torch.equal(a, b)
    assert torch.equal(drop(x), a)


def test_dropout_gradient_is_the_mask() -> None:
    drop, x = Dropout(0.25), torch.randn(16, 32, requires_grad=True)
    torch.manual_seed(4)
    y = drop(x)
    y.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.75, rtol=0, atol=0)


def test_planned_masks_depend_on_the_seed_and_position_alone(monkeypatch) -> None:
    # plan_masks: forward r of a chunk gets the same mask whether the chunk is taken
    # from its start or from r on (a resume), across block boundaries; forwards past the
    # plan's end draw from the global RNG again
    monkeypatch.setattr(layers_mod, "AHEAD_ELEMS", 3 * 32 * 6 * 7)  # blocks of 3 forwards
    x = torch.randn(32, 6, 7)
    layer = Dropout(0.3)
    plan_masks(dropouts(nn.Sequential(layer)), seed=11, start=0, end=7)
    whole = [layer(x) for _ in range(7)]
    for r in (1, 3, 5, 6):
        plan_masks(dropouts(nn.Sequential(layer)), seed=11, start=r, end=7)
        for i in range(r, 7):
            assert torch.equal(layer(x), whole[i])
    assert not torch.equal(whole[0], whole[1]) and not torch.equal(whole[2], whole[3])
    plan_masks(dropouts(nn.Sequential(layer)), seed=12, start=0, end=1)
    assert not torch.equal(layer(x), whole[0])  # another chunk, another stream
    torch.manual_seed(5)
    after = layer(x)  # past the plan's end: one draw of the global RNG
    torch.manual_seed(5)
    assert torch.equal(after, x * keep_mask(x.shape, 0.3, x.device))
    assert layer.plan.pos == 1
