"""Batched data augmentation: every op acts on the whole batch on x.device.

Random crop with zero padding and horizontal flips are the CIFAR recipe of He
et al., "Deep Residual Learning for Image Recognition" (CVPR 2016,
arXiv:1512.03385); rotations follow the usual affine_grid/grid_sample route
(bilinear, zeros outside). Each sample draws its own parameters; there is no
per-sample Python loop. Pad-then-crop by p pixels is implemented as an integer
shift in [−p, p] with zero fill (the same thing, without allocating the padded
tensor), so cropped values are exactly the input's values or 0. `translate` is
also an integer shift, by up to round(translate·size) pixels per axis (2-D for
images, 1-D for sequences).

Randomness comes only from `generator` (draws are made on the generator's device
and moved to x.device), so the same generator state gives the same batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tricks.spec import AugmentSpec

FLIP_P = 0.5


def _rand(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def _randint(
    low: int, high: int, n: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """n integers uniform in [low, high] (inclusive)."""
    out = torch.randint(low, high + 1, (n,), generator=generator, device=generator.device)
    return out.to(device)


def flip(x: torch.Tensor, dim: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """Reverse `dim` for each sample with probability p."""
    mask = _rand(x.shape[0], generator, x.device) < p
    mask = mask.view(-1, *([1] * (x.ndim - 1)))
    return torch.where(mask, x.flip(dim), x)


def _shift_axis(x: torch.Tensor, axis: int, shift: torch.Tensor) -> torch.Tensor:
    """out[n, ..., i, ...] = x[n, ..., i − shift[n], ...] along `axis`, zero where out of range."""
    size = x.shape[axis]
    src = torch.arange(size, device=x.device).unsqueeze(0) - shift.unsqueeze(1)  # (N, size)
    valid = (src >= 0) & (src < size)
    view = [x.shape[0]] + [1] * (x.ndim - 1)
    view[axis] = size
    idx = src.clamp(0, size - 1).view(view).expand_as(x)
    return x.gather(axis, idx) * valid.view(view).to(x.dtype)


def random_shift(
    x: torch.Tensor, max_shift: tuple[int, ...], generator: torch.Generator
) -> torch.Tensor:
    """Shift the last len(max_shift) axes by independent uniform integers in [−m, m]."""
    n = x.shape[0]
    first = x.ndim - len(max_shift)
    for i, m in enumerate(max_shift):
        if m > 0:
            x = _shift_axis(x, first + i, _randint(-m, m, n, generator, x.device))
    return x


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image (N,C,H,W) by its angle in degrees, about the centre, zeros outside.

    Positive angles turn it counter-clockwise as displayed (90° equals torch.rot90(x, 1, (-2, -1))).
    """
    n, _, h, w = x.shape
    rad = degrees.to(device=x.device, dtype=torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # Rotation in pixel units, written in grid_sample's normalized [-1, 1] coordinates.
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * (h / w)
    theta[:, 1, 0] = sin * (w / h)
    theta[:, 1, 1] = cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def add_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return x + std * noise.to(x.device)


def augment_batch(
    x: torch.Tensor, aug: AugmentSpec, kind: str, generator: torch.Generator
) -> torch.Tensor:
    """Augment a batch: crop, flips, rotation, translation (images), shift (sequences), noise."""
    if kind == "image":
        h, w = x.shape[-2:]
        if aug.crop_padding > 0:
            p = aug.crop_padding
            x = random_shift(x, (p, p), generator)
        if aug.hflip:
            x = flip(x, -1, FLIP_P, generator)
        if aug.vflip:
            x = flip(x, -2, FLIP_P, generator)
        if aug.rotate > 0:
            degrees = (_rand(x.shape[0], generator, x.device) * 2 - 1) * aug.rotate
            x = rotate(x, degrees)
        if aug.translate > 0:
            x = random_shift(x, (round(aug.translate * h), round(aug.translate * w)), generator)
    elif kind == "sequence" and aug.translate > 0:
        x = random_shift(x, (round(aug.translate * x.shape[-1]),), generator)
    if aug.noise_std > 0:
        x = add_noise(x, aug.noise_std, generator)
    return x
