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
draws from the global RNG), so each batch draws one 63-bit seed from the torch
`generator` and samples λ, the coin flips and the box with a numpy Generator
seeded by it. The permutation is drawn with the torch generator itself. The same
generator state therefore always gives the same batch, and the global RNG is
never touched. λ stays on the host (one float per batch); tensors stay on x.device.
"""

from __future__ import annotations

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


def host_rng(generator: torch.Generator) -> np.random.Generator:
    """A numpy Generator seeded from (and advancing) the torch generator."""
    seed = torch.randint(0, 2**63 - 1, (1,), generator=generator, device=generator.device)
    return np.random.default_rng(int(seed.item()))  # note: one host sync per batch


def sample_lambda(alpha: float, rng: np.random.Generator) -> float:
    """λ ~ Beta(α, α)."""
    return float(rng.beta(alpha, alpha))


def _permutation(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randperm(n, generator=generator, device=generator.device).to(device)


def mixup(
    x: torch.Tensor, target: torch.Tensor, lam: float, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x̃ = λx + (1−λ)x[perm], ỹ = λy + (1−λ)y[perm]."""
    return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]


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
    out[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    return out, lam * target + (1 - lam) * target[perm], lam


def mix_batch(
    x: torch.Tensor,
    target: torch.Tensor,
    reg: RegularizationSpec,
    kind: str,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply mixup or CutMix (images only) to a batch of inputs and soft targets.

    With both enabled each batch picks one with probability ½; the chosen one is
    then applied with its own `prob`. Unmixed batches come back unchanged.
    """
    methods = []
    if reg.mixup is not None:
        methods.append(("mixup", reg.mixup))
    if reg.cutmix is not None and kind == "image":
        methods.append(("cutmix", reg.cutmix))
    if not methods or x.shape[0] < 2:
        return x, target
    rng = host_rng(generator)
    name, cfg = methods[int(rng.integers(len(methods)))] if len(methods) > 1 else methods[0]
    if cfg.prob < 1.0 and rng.random() >= cfg.prob:
        return x, target
    lam = sample_lambda(cfg.alpha, rng)
    perm = _permutation(x.shape[0], generator, x.device)
    if name == "mixup":
        return mixup(x, target, lam, perm)
    box = cutmix_box(x.shape[-2], x.shape[-1], lam, rng)
    x, target, _ = cutmix(x, target, box, perm)
    return x, target
