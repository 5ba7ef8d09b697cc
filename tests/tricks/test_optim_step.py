"""tricks.optim_step: the same update as torch's `opt.step()`, and `opt.step()` itself
whenever torch's wrappers around it would do something (hooks, a profiler, a scheduler)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from tricks.optim_step import clear_grads, step_fn


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


OPTIMIZERS = {
    "sgd": lambda p, f: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3, fused=f),
    "nesterov": lambda p, f: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, fused=f),
    "adam": lambda p, f: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3, fused=f),
    "adamw": lambda p, f: torch.optim.AdamW(p, lr=1e-2, fused=f),
}


def _train(model: nn.Module, opt: torch.optim.Optimizer, update, steps: int = 6) -> None:
    g = torch.Generator().manual_seed(3)
    for _ in range(steps):
        x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
        nn.functional.cross_entropy(model(x), y).backward()
        update()


@pytest.mark.parametrize("fused", [True, None])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_lean_step_makes_torchs_update_bit_for_bit(name: str, fused: bool | None) -> None:
    ref, lean = _model(0), _model(0)
    opt_ref = OPTIMIZERS[name](ref.parameters(), fused)
    opt_lean = OPTIMIZERS[name](lean.parameters(), fused)
    params = [p for g in opt_lean.param_groups for p in g["params"]]
    step = step_fn(opt_lean)
    assert step is not opt_lean.step  # the lean path is taken for torch's own optimizers

    def torch_update() -> None:
        opt_ref.step()
        opt_ref.zero_grad(set_to_none=True)

    def lean_update() -> None:
        step()
        clear_grads(params)

    _train(ref, opt_ref, torch_update)
    _train(lean, opt_lean, lean_update)
    for a, b in zip(ref.state_dict().values(), lean.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(
        opt_ref.state_dict()["state"].values(),
        opt_lean.state_dict()["state"].values(),
        strict=True,
    ):
        for k in a:
            assert torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])), k
    assert all(p.grad is None for p in lean.parameters())
    assert torch.is_grad_enabled()  # grad mode is given back


def test_grad_mode_is_restored_when_the_step_raises() -> None:
    model = _model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = step_fn(opt)
    model(torch.randn(4, 6)).sum().backward()
    opt.param_groups[0]["lr"] = "not a number"  # the update itself fails
    with pytest.raises(TypeError):
        step()
    assert torch.is_grad_enabled()
    with torch.no_grad():  # and a caller's no_grad stays on
        opt.param_groups[0]["lr"] = 0.1
        step()
        assert not torch.is_grad_enabled()


def test_the_update_runs_without_grad() -> None:
    model = _model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 6)).sum().backward()
    step_fn(opt)()
    assert all(p.grad_fn is None and p.is_leaf for p in model.parameters())


@pytest.mark.parametrize("kind", ["pre", "post", "global pre", "global post"])
def test_step_hooks_still_run(kind: str) -> None:
    model = _model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    step = step_fn(opt)  # made before the hook is registered
    calls: list[int] = []
    register = {
        "pre": opt.register_step_pre_hook,
        "post": opt.register_step_post_hook,
        "global pre": register_optimizer_step_pre_hook,
        "global post": register_optimizer_step_post_hook,
    }[kind]
    handle = register(lambda *a: calls.append(1))
    try:
        model(torch.randn(4, 6)).sum().backward()
        step()
        assert calls == [1]
    finally:
        handle.remove()
    step()
    assert calls == [1]


def test_a_profiler_still_sees_the_optimizer_step() -> None:
    model = _model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    step = step_fn(opt)
    model(torch.randn(4, 6)).sum().backward()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    names = {e.name for e in prof.events()}
    assert "Optimizer.step#SGD.step" in names


def test_a_schedulers_step_counter_still_counts() -> None:
    model = _model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)  # patches opt.step on the instance
    step = step_fn(opt)
    model(torch.randn(4, 6)).sum().backward()
    step()
    assert getattr(opt, "_opt_called", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "lr_scheduler.step() before optimizer.step()"
        sched.step()


def test_a_differentiable_optimizer_goes_through_torch() -> None:
    model = _model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, differentiable=True)
    assert step_fn(opt) == opt.step
