"""no_bias_decay groups, the L1/L2 penalty against a hand sum, and optimizer semantics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tricks.models import build_model
from tricks.regularization import build_optimizer, param_groups, penalty
from tricks.spec import AdamSpec, AdamWSpec, CNNSpec, SGDSpec


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_no_bias_decay_puts_biases_and_norm_params_in_zero_group() -> None:
    model = build_model(CNNSpec(channels=[4], hidden=8), (1, 8, 8), 3, 0.0)
    groups = param_groups(model, 5e-4, no_bias_decay=True)
    decay, no_decay = groups
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    norm_params = {
        f"{mn}.{pn}"
        for mn, m in model.named_modules()
        if isinstance(m, nn.BatchNorm2d)
        for pn, _ in m.named_parameters()
    }
    biases = {n for n, _ in model.named_parameters() if n.endswith("bias")}
    assert {names[id(p)] for p in no_decay["params"]} == norm_params | biases
    assert all(p.ndim >= 2 for p in decay["params"])
    assert all(p.ndim <= 1 for p in no_decay["params"])
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert any(p is bn.weight for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_without_no_bias_decay_everything_decays() -> None:
    model = small_net()
    (group,) = param_groups(model, 0.1, no_bias_decay=False)
    assert group["weight_decay"] == 0.1 and len(group["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize(
    "spec,cls",
    [
        (SGDSpec(lr=0.2, momentum=0.8, nesterov=True), torch.optim.SGD),
        (AdamSpec(lr=0.003, weight_decay=0.01), torch.optim.Adam),
        (AdamWSpec(lr=0.004), torch.optim.AdamW),
    ],
)
def test_build_optimizer(spec, cls) -> None:
    opt = build_optimizer(spec, small_net())
    assert type(opt) is cls
    for g in opt.param_groups:
        assert g["lr"] == spec.lr
    assert [g["weight_decay"] for g in opt.param_groups] == [spec.weight_decay, 0.0]
    if isinstance(spec, SGDSpec):
        assert opt.param_groups[0]["momentum"] == 0.8 and opt.param_groups[0]["nesterov"]
    else:
        assert opt.param_groups[0]["betas"] == spec.betas


def test_sgd_weight_decay_is_coupled_and_skips_biases() -> None:
    """One plain SGD step with zero data gradient: w ← w − lr·wd·w, biases untouched."""
    model = small_net()
    opt = build_optimizer(SGDSpec(lr=0.5, momentum=0.0, nesterov=False, weight_decay=0.1), model)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for b, p in zip(before, model.parameters(), strict=True):
        expected = b * (1 - 0.5 * 0.1) if p.ndim >= 2 else b
        torch.testing.assert_close(p.detach(), expected)


def test_penalty_is_a_hand_sum_over_weights_only() -> None:
    model = small_net()
    w1, w2 = model[0].weight, model[3].weight
    hand = 0.01 * (w1.abs().sum() + w2.abs().sum()) + 0.1 * (w1.pow(2).sum() + w2.pow(2).sum())
    torch.testing.assert_close(penalty(model, 0.01, 0.1), hand)
    torch.testing.assert_close(penalty(model, 0.0, 0.1), 0.1 * (w1.pow(2).sum() + w2.pow(2).sum()))
    zero = penalty(model, 0.0, 0.0)
    assert zero.shape == () and zero.item() == 0.0 and not zero.requires_grad


def test_l2_penalty_alone_shrinks_weights_and_leaves_biases() -> None:
    """Data loss is exactly zero (output × 0), so only the penalty moves the parameters."""
    model = small_net()
    model.eval()  # BatchNorm uses running stats: no batch statistics involved
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    l2 = 0.5
    for _ in range(3):
        data_loss = (model(torch.randn(8, 3)) * 0.0).sum()
        loss = data_loss + penalty(model, 0.0, l2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in model.named_parameters():
        if p.ndim >= 2:
            # d(l2·w²)/dw = 2·l2·w, so each step multiplies w by (1 − 2·lr·l2)
            torch.testing.assert_close(p.detach(), before[n] * (1 - 2 * 0.1 * l2) ** 3)
            assert p.detach().norm() < before[n].norm()
        else:
            assert torch.equal(p.detach(), before[n]), n
