"""One optimizer update (tricks.step): the update against a hand-written one, the fused
penalty gradients against autograd, smoothed targets against torch's label_smoothing,
and the grad-scaler path against the plain one."""

from __future__ import annotations

import copy

import pytest
import torch

import tricks.step as step_mod
from tricks.data import load_dataset
from tricks.models import build_model
from tricks.regularization import penalty
from tricks.spec import JobSpec


def spec_for(**regularization) -> JobSpec:
    return JobSpec(
        data={"dataset": "digits"},
        model={"hidden": [16], "batch_norm": False},
        regularization=regularization,
        training={"batch_size": 32, "log_every": 4, "grad_clip": 1.0},
    )


def stepper_for(spec: JobSpec, scaler=None, read_every: int = 4):
    ds = load_dataset(spec.data, seed=0)
    torch.manual_seed(0)
    model = build_model(spec.model, tuple(ds.input_shape), ds.num_classes, 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # plain SGD: easy to write by hand
    gen = torch.Generator().manual_seed(0)
    return ds, model, step_mod.Stepper(spec, ds, model, opt, scaler, gen, None, read_every)


def test_step_is_the_hand_written_update():
    eps, l2, lr = 0.1, 1e-3, 0.3
    ds, model, stepper = stepper_for(spec_for(label_smoothing=eps, l2=l2), read_every=1)
    ref = copy.deepcopy(model)
    perm, _ = stepper.start_epoch(None, None)
    stepper.step(lr, 0, 0)
    loss_sum, _, rows = stepper.read()
    # by hand: smoothed cross-entropy on the first 32 of the permutation, + l2·Σw²,
    # gradient clipped to norm 1, one plain SGD step
    idx = perm[:32]
    logp = torch.log_softmax(ref(ds.x_train[idx]), dim=1)
    y = ds.y_train[idx]
    ce = -((1 - eps) * logp[torch.arange(32), y] + eps / 10 * logp.sum(1)).mean()
    reg = l2 * sum((p**2).sum() for p in ref.parameters() if p.ndim >= 2)
    grads = torch.autograd.grad(ce + reg, list(ref.parameters()))
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    scale = min(1.0, 1.0 / (float(norm) + 1e-6))
    assert rows == 1 and loss_sum == pytest.approx(float(ce.detach()), rel=1e-6)
    with torch.no_grad():
        for p, g, q in zip(ref.parameters(), grads, model.parameters(), strict=True):
            torch.testing.assert_close(q, p - lr * scale * g)


def test_grad_scaler_path_makes_the_same_updates():
    spec = spec_for(label_smoothing=0.1, l2=1e-3, mixup={"alpha": 0.4})
    _, plain, a = stepper_for(spec)
    _, scaled, b = stepper_for(spec, torch.amp.GradScaler("cpu", init_scale=2.0**10))
    calls = []
    real = b.scaler.step
    b.scaler.step = lambda opt: calls.append(1) or real(opt)
    for s in (a, b):
        s.start_epoch(None, None)
        for i in range(8):
            s.step(0.1, i, i)
            if (i + 1) % 4 == 0:
                s.read()
    assert len(calls) == 8
    for p, q in zip(plain.parameters(), scaled.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_penalty_gradients_match_autograd_of_penalty():
    spec = JobSpec(data={"dataset": "digits"}, model={"hidden": [16, 8]})
    torch.manual_seed(0)
    a = build_model(spec.model, (1, 8, 8), 10, 0.0)
    b = build_model(spec.model, (1, 8, 8), 10, 0.0)
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([1, 2, 3, 4])
    (torch.nn.functional.cross_entropy(a(x), y) + penalty(a, 1e-3, 1e-2)).backward()
    torch.nn.functional.cross_entropy(b(x), y).backward()
    weights = [p for p in b.parameters() if p.ndim >= 2]
    values = [w.detach() for w in weights]  # taken before the update below
    step_mod.add_penalty_grads(weights, 1e-3, 1e-2)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad)
        assert pb.grad.grad_fn is None and not pb.grad.requires_grad  # no graph recorded
    # the loop's call: the weights' detached aliases made once, read after an update
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.5)
            p.grad = None
    for p in a.parameters():
        p.grad = None
    a.load_state_dict(b.state_dict())
    (torch.nn.functional.cross_entropy(a(x), y) + penalty(a, 1e-3, 1e-2)).backward()
    torch.nn.functional.cross_entropy(b(x), y).backward()
    step_mod.add_penalty_grads(weights, 1e-3, 1e-2, values)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad)


def test_smoothed_probability_targets_follow_torch_label_smoothing():
    # the loop uses F.cross_entropy(logits, smooth_targets(...)[y]) for speed; it must be
    # torch's label_smoothing (ε/K convention) exactly
    from tricks.mixup import smooth_targets

    torch.manual_seed(0)
    logits, y = torch.randn(32, 10), torch.randint(0, 10, (32,))
    table = smooth_targets(torch.arange(10), 10, 0.1)
    torch.testing.assert_close(
        torch.nn.functional.cross_entropy(logits, table[y]),
        torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1),
    )
