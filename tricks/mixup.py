"""Label smoothing, mixup and CutMix on soft targets.

- Label smoothing: Szegedy et al., "Rethinking the Inception Architecture for
  Computer Vision" (CVPR 2016, arXiv:1512.00567), in torch's convention
  (1−ε)·onehot + ε/K.
- mixup: Zhang et al., "mixup: Beyond Empirical Risk Minimization" (ICLR 2018,
  arXiv:1710.09412). λ ~ Beta(α, α) once per batch, the partner is a random
  permutation of the batch: x̃ = λx + (1−λ)x_perm, ỹ = λy + (1−λ)y_perm.
- CutMix: Yun et al., "CutMix: Regularization Strategy to Train Strong
  Classifiers with Localizable Features" (ICCV 2019, arXiv:1905.04899). A box of
  area ≈ (1−λ)·H·W is pasted from the permuted batch; λ is then corrected to the
  area actually kept, since the box is clipped at the border.

Randomness: torch has no generator-driven Beta sampler (torch.distributions
draws from the global RNG), so the host-side draws (the method, the `prob`
coin, λ and the CutMix box) come from a numpy Generator seeded with one 63-bit
seed drawn from the torch `generator`. Reading that seed is a host sync, so the
training loop does it once per epoch: `plan_mixing` draws every batch's host
values for the epoch in one go, and `apply_mix` mixes a batch from its entry
with no host sync (λ is a Python float; the partner permutation is one
`randperm` on the generator's device). `mix_batch` is the one-batch form of
the same two steps. The same generator state therefore always gives the same
batches, and the global RNG is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tricks.spec import RegularizationSpec


def smooth_targets(y: torch.Tensor, num_classes: int, eps: float) -> torch.Tensor:
    """Float targets (1−ε)·onehot(y) + ε/K; plain one-hot when ε = 0."""
    onehot = F.one_hot(y.long(), num_classes).float()
    if eps == 0:
        return onehot
    return onehot * (1.0 - eps) + eps / num_classes


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean over the batch of −Σ_k target_k · log_softmax(logits)_k."""
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


def draw_seed(generator: torch.Generator) -> int:
    """A 63-bit seed drawn from (and advancing) the torch generator."""
    seed = torch.randint(0, 2**63 - 1, (1,), generator=generator, device=generator.device)
    return int(seed.item())  # note: a host sync (on CUDA); the loop makes it once per epoch


def host_rng(generator: torch.Generator) -> np.random.Generator:
    """A numpy Generator seeded from (and advancing) the torch generator."""
    return np.random.default_rng(draw_seed(generator))


def sample_lambda(alpha: float, rng: np.random.Generator) -> float:
    """λ ~ Beta(α, α)."""
    return float(rng.beta(alpha, alpha))


def _permutation(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randperm(n, generator=generator, device=generator.device).to(device)


def mixup(
    x: torch.Tensor, target: torch.Tensor, lam: float, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x̃ = λx + (1−λ)x[perm], ỹ = λy + (1−λ)y[perm]."""
    # lerp(a, b, λ) = a + λ(b − a): one fused op instead of two scalings and a sum
    return torch.lerp(x[perm], x, lam), torch.lerp(target[perm], target, lam)


def cutmix_box(h: int, w: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): a box of area ≈ (1−λ)·h·w centred uniformly, clipped to the image."""
    ratio = np.sqrt(1.0 - lam)
    ch, cw = int(h * ratio), int(w * ratio)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
    return y0, y1, x0, x1


def cutmix(
    x: torch.Tensor,
    target: torch.Tensor,
    box: tuple[int, int, int, int],
    perm: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste the box from x[perm]; targets mixed by the area kept. Returns (x, target, λ)."""
    y0, y1, x0, x1 = box
    h, w = x.shape[-2:]
    out = x.clone()
    out[..., y0:y1, x0:x1] = x[perm, ..., y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    return out, torch.lerp(target[perm], target, lam), lam


@dataclass(frozen=True)
class Mix:
    """One batch's host-side draws: the method, λ and (CutMix) the box."""

    method: str  # "mixup" | "cutmix"
    lam: float
    box: tuple[int, int, int, int] | None = None


def _methods(reg: RegularizationSpec, kind: str) -> list[tuple[str, Any]]:
    methods: list[tuple[str, Any]] = []
    if reg.mixup is not None:
        methods.append(("mixup", reg.mixup))
    if reg.cutmix is not None and kind == "image":
        methods.append(("cutmix", reg.cutmix))
    return methods


def plan_mixing(
    reg: RegularizationSpec,
    kind: str,
    image_hw: tuple[int, int] | None,
    n_batches: int,
    rng: np.random.Generator,
) -> list[Mix | None]:
    """The host draws of `n_batches` batches, in order; None for a batch left unmixed.

    With both enabled each batch picks one with probability ½; the chosen one is
    then applied with its own `prob`. Per batch the draws come in the same order
    (method, coin, λ, box), so a one-batch plan is what `mix_batch` uses.
    """
    methods = _methods(reg, kind)
    if len(methods) == 1 and methods[0][0] == "mixup" and methods[0][1].prob >= 1.0:
        # only λ per batch: one call draws the same numbers as n_batches single draws
        alpha = methods[0][1].alpha
        return [Mix("mixup", lam) for lam in rng.beta(alpha, alpha, size=n_batches).tolist()]
    plan: list[Mix | None] = []
    for _ in range(n_batches if methods else 0):
        name, cfg = methods[int(rng.integers(len(methods)))] if len(methods) > 1 else methods[0]
        if cfg.prob < 1.0 and rng.random() >= cfg.prob:
            plan.append(None)
            continue
        lam = sample_lambda(cfg.alpha, rng)
        if name == "mixup":
            plan.append(Mix("mixup", lam))
        else:
            assert image_hw is not None
            plan.append(Mix("cutmix", lam, cutmix_box(image_hw[0], image_hw[1], lam, rng)))
    return plan


def apply_mix(
    x: torch.Tensor, target: torch.Tensor, mix: Mix | None, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a batch as `mix` says, with a partner permutation drawn now; no host sync."""
    if mix is None or x.shape[0] < 2:
        return x, target
    perm = _permutation(x.shape[0], generator, x.device)
    if mix.method == "mixup":
        return mixup(x, target, mix.lam, perm)
    assert mix.box is not None
    x, target, _ = cutmix(x, target, mix.box, perm)
    return x, target


def plan_lambdas(plan: list[Mix | None], device: torch.device) -> torch.Tensor:
    """The plan's λs as one tensor on `device` (1.0 where a batch is not mixed), made once per epoch."""
    return torch.tensor([1.0 if m is None else m.lam for m in plan], device=device)


def mix_batches(
    x: torch.Tensor,
    target: torch.Tensor,
    mixes: list[Mix | None],
    lams: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`apply_mix` for len(mixes) consecutive equal batches of x at once, as few ops as one batch.

    For mixup (and unmixed batches), every batch's partner permutation comes from
    one draw (the argsort of uniforms: a uniform random permutation per row), and
    one index_select and one lerp per tensor mix them all with their own λ
    (`lams`, from `plan_lambdas`; λ = 1 gives the batch back exactly, since lerp
    returns `end` when the weight is 1). Chunks with a CutMix batch go batch by batch.
    """
    c = len(mixes)
    bs = x.shape[0] // c
    if all(m is None for m in mixes) or bs < 2:
        return x, target
    if any(m is not None and m.method != "mixup" for m in mixes):
        xs, ts = [], []
        for i, m in enumerate(mixes):
            xi, ti = apply_mix(
                x[i * bs : (i + 1) * bs], target[i * bs : (i + 1) * bs], m, generator
            )
            xs.append(xi)
            ts.append(ti)
        return torch.cat(xs), torch.cat(ts)
    u = torch.rand(c, bs, generator=generator, device=generator.device)
    offsets = torch.arange(0, c * bs, bs, device=generator.device).unsqueeze(1)
    src = (u.argsort(dim=1) + offsets).view(-1).to(x.device)
    # batch b's λ broadcast over its rows: x seen as (c, bs, ...), λ as (c, 1, ...)
    return _lerp_batches(x, src, lams, c), _lerp_batches(target, src, lams, c)


def _lerp_batches(t: torch.Tensor, src: torch.Tensor, lams: torch.Tensor, c: int) -> torch.Tensor:
    """λ_b·t + (1−λ_b)·t[src] for each of the c batches of t."""
    grouped = (c, t.shape[0] // c, *t.shape[1:])
    w = lams.to(t.dtype).view(c, *([1] * (t.ndim)))
    return torch.lerp(t.index_select(0, src).view(grouped), t.view(grouped), w).view_as(t)


def mix_batch(
    x: torch.Tensor,
    target: torch.Tensor,
    reg: RegularizationSpec,
    kind: str,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply mixup or CutMix (images only) to a batch of inputs and soft targets.

    One host sync (the seed); the training loop plans a whole epoch instead.
    Unmixed batches come back unchanged.
    """
    if not _methods(reg, kind) or x.shape[0] < 2:
        return x, target
    hw = (x.shape[-2], x.shape[-1]) if kind == "image" else None
    (mix,) = plan_mixing(reg, kind, hw, 1, host_rng(generator))
    return apply_mix(x, target, mix, generator)
