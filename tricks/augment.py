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

import functools
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


# columns of the one (N, 7) uniform draw a batch of images takes
_CROP_Y, _CROP_X, _HFLIP, _VFLIP, _ANGLE, _MOVE_Y, _MOVE_X = range(7)


def _int_shift(u: torch.Tensor, m: int, *, centre: bool = True) -> torch.Tensor:
    """Integers uniform in [−m, m] from uniforms in [0, 1) (in [0, 2m] with centre=False)."""
    cells = (u * (2 * m + 1)).floor_().clamp_(max=2 * m)
    return cells.sub_(m) if centre else cells


@functools.lru_cache(maxsize=16)
def _grid_basis(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(6, h·w·2): a batch's (N, 6) affine coefficients times this is its (N, h, w, 2) grid.

    Row (k, j) holds coordinate k (x, y, 1) of every pixel centre, in pixels from the
    image centre (x along w), scaled to grid_sample's units (align_corners=False:
    x / (w/2), y / (h/2)), in output column (·, j) and 0 in the other one. So one
    (N, 6) × (6, 2·h·w) product gives the grid already laid out as grid_sample reads
    it: no (h·w, N, 2) → (N, h·w, 2) transpose copy, and not a batched matmul with
    k = 3, several times slower.
    """
    ys = torch.arange(h, device=device, dtype=torch.float32) - (h - 1) / 2
    xs = torch.arange(w, device=device, dtype=torch.float32) - (w - 1) / 2
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pixels = torch.stack((gx, gy, torch.ones_like(gx)), dim=-1).view(h * w, 3)
    scale = torch.diag(torch.tensor((2.0 / w, 2.0 / h), device=device))
    return torch.einsum("pk,jl->kjpl", pixels, scale).reshape(6, h * w * 2)


@functools.lru_cache(maxsize=16)
def _crop_keep(h: int, w: int, pc: int, device: torch.device) -> torch.Tensor:
    """((2pc+1)², h·w) 0/1: pixels that a crop shift (sy, sx) ∈ [−pc, pc]² keeps in frame.

    Row (sy + pc)·(2pc+1) + (sx + pc); pixel (r, c) is kept when (r + sy, c + sx) is in the image.
    """
    s = torch.arange(-pc, pc + 1, device=device)
    r, c = torch.arange(h, device=device) + s[:, None], torch.arange(w, device=device) + s[:, None]
    rows, cols = (r >= 0) & (r < h), (c >= 0) & (c < w)  # (2pc+1, h), (2pc+1, w)
    return (rows[:, None, :, None] & cols[None, :, None, :]).reshape(-1, h * w).float()


@functools.lru_cache(maxsize=16)
def _arange(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, device=device)


def _geometric(x: torch.Tensor, aug: AugmentSpec, generator: torch.Generator) -> torch.Tensor:
    """Crop, flips, rotation and translation of images as one resampling of the batch.

    Each is a map from output pixel to source pixel, applied in the order
    crop → hflip → vflip → rotate → translate. Without rotation every map is an
    integer shift or a reversal and their composition is done as one gather:
    values are exactly the input's or 0. With rotation, all of them are one
    bilinear grid_sample, zeros outside: the crop's shift and the flips map pixel
    centres onto pixel centres, so in the affine map they leave the rotation's
    bilinear weights as they are, and the pixels the crop cuts away are zeroed
    in the source first (a (2p+1)² table of masks), so the rotation cannot bring
    them back: the chain of single ops, up to float rounding of the grid, with
    no gather, padding or index arithmetic per chunk. Fusing also means
    translate brings in content where the rotation (or crop) moved it just out
    of frame, instead of the zeros a chain of separate resamplings would leave:
    a border effect of at most `translate` pixels.
    """
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    pc = aug.crop_padding
    my, mx = round(aug.translate * h), round(aug.translate * w)
    if not (pc or my or mx or aug.hflip or aug.vflip or aug.rotate > 0):
        return x
    u = _rand_cols(n, generator, x.device)
    # crop (pad-then-crop): the content's shift (y, x) plus p, in [0, 2p]; both axes in one pass
    cells = _int_shift(u[:, _CROP_Y : _CROP_X + 1], pc, centre=False) if pc else None
    ty = _int_shift(u[:, _MOVE_Y], my) if my else None
    tx = _int_shift(u[:, _MOVE_X], mx) if mx else None
    fy = u[:, _VFLIP] < FLIP_P if aug.vflip else None
    fx = u[:, _HFLIP] < FLIP_P if aug.hflip else None
    if aug.rotate <= 0:
        crop = cells.sub(pc) if cells is not None else None
        sy, sx = (crop[:, 0], crop[:, 1]) if crop is not None else (None, None)
        return _gather(x, sx, sy, fx, fy, tx, ty, (pc + my, pc + mx))
    if cells is not None:  # what the crop cuts away stays away: zero it in the source
        row = cells[:, 0].mul(2 * pc + 1).add_(cells[:, 1]).long()
        keep = _crop_keep(h, w, pc, x.device).index_select(0, row)
        x = x * keep.view(n, 1, h, w).to(x.dtype)
    # the angle in radians, uniform in ±rotate degrees
    rot = aug.rotate * (math.pi / 180.0)
    rad = u[:, _ANGLE].mul(2 * rot).sub_(rot)
    return _affine(x, rad, pc, cells, fx, fy, tx, ty)


def _rand_cols(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, 7, generator=generator, device=generator.device).to(device)


def _source_index(
    size: int, shift: torch.Tensor | None, flip: torch.Tensor | None, move: torch.Tensor | None
) -> torch.Tensor:
    """(N, size) source index of each output index along one axis: undo translate, flip, crop."""
    i = _arange(
        size, shift.device if shift is not None else (flip if flip is not None else move).device
    )
    src = i.unsqueeze(0) if move is None else i - move.long().unsqueeze(1)
    if flip is not None:
        src = torch.where(flip.unsqueeze(1), (size - 1) - src, src)
    if shift is not None:
        src = src - shift.long().unsqueeze(1)
    return src


def _gather(x, sx, sy, fx, fy, tx, ty, pad: tuple[int, int]) -> torch.Tensor:
    """Integer shifts and flips of (N, C, H, W) as one gather over H·W, zero fill.

    The batch is zero-padded first by `pad` (rows, columns): the largest shift
    the spec allows along each axis (crop_padding plus the translation), so every
    source index lands in the image or its padding: no validity mask and no
    clamping (fewer passes over the chunk; a pixel shifted out of frame reads the
    padding's 0), and no host sync to find the shifts drawn.
    """
    n, c, h, w = x.shape
    axes = []
    for size, s, f, t, m in ((h, sy, fy, ty, pad[0]), (w, sx, fx, tx, pad[1])):
        if s is None and f is None and t is None:
            axes.append(_arange(size, x.device).add(m).expand(n, size))
        else:
            axes.append(_source_index(size, s, f, t).add_(m))
    (py, px), (rows, cols) = pad, axes
    wp = w + 2 * px
    xp = F.pad(x, (px, px, py, py)) if py or px else x
    idx = rows.mul(wp).unsqueeze(2) + cols.unsqueeze(1)
    src = xp.reshape(n, c, (h + 2 * py) * wp)
    return src.gather(2, idx.view(n, 1, h * w).expand(n, c, h * w)).view_as(x)


def _affine(x, rad, pc, cells, fx, fy, tx, ty) -> torch.Tensor:
    """Bilinear resampling of (N, C, H, W) through crop, flips, rotation and translate.

    `cells`: (N, 2) crop cells (y, x) in [0, 2·pc], the crop shift plus pc; or None.
    """
    n, _, h, w = x.shape
    cos, sin = torch.cos(rad), torch.sin(rad)
    # source = Fl·R·(q − t) − s in pixels from the centre (q: output pixel, R as in `rotate`,
    # Fl = diag(±1, ±1) the flips, t the translation, s the crop shift)
    a, b, d, e = cos, -sin, sin, cos
    if fx is not None:
        sign = 1.0 - 2.0 * fx.to(cos.dtype)
        a, b = a * sign, b * sign
    if fy is not None:
        sign = 1.0 - 2.0 * fy.to(cos.dtype)
        d, e = d * sign, e * sign
    minus_s = None if cells is None else torch.sub(pc, cells)  # −s = pc − cell, (y, x)
    if tx is not None or ty is not None:
        zero = torch.zeros_like(cos)
        mx = tx if tx is not None else zero
        my = ty if ty is not None else zero
        vx, vy = -(a * mx + b * my), -(d * mx + e * my)
        if minus_s is not None:
            vx, vy = vx + minus_s[:, 1], vy + minus_s[:, 0]
    elif minus_s is not None:
        vx, vy = minus_s[:, 1], minus_s[:, 0]
    else:
        vx = vy = torch.zeros_like(cos)
    m = torch.stack((a, d, b, e, vx, vy), dim=1)  # (x, y, 1) coefficients of (source x, y)
    grid = torch.mm(m, _grid_basis(h, w, x.device)).view(n, h, w, 2)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def augment_batch(
    x: torch.Tensor, aug: AugmentSpec, kind: str, generator: torch.Generator
) -> torch.Tensor:
    """Augment a batch: crop, flips, rotation, translation (images), shift (sequences), noise.

    Images take one (N, 7) uniform draw and one resampling (`_geometric`).
    """
    if kind == "image":
        x = _geometric(x, aug, generator)
    elif kind == "sequence" and aug.translate > 0:
        x = random_shift(x, (round(aug.translate * x.shape[-1]),), generator)
    if aug.noise_std > 0:
        x = add_noise(x, aug.noise_std, generator)
    return x
