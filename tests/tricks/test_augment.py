"""Batched augmentations: shapes kept, seeded, exact where they should be exact."""

from __future__ import annotations

import pytest
import torch

from tricks.augment import _shift_axis, add_noise, augment_batch, flip, random_shift, rotate
from tricks.spec import AugmentSpec

ALL_IMAGE = AugmentSpec(
    hflip=True, vflip=True, rotate=15, crop_padding=2, translate=0.2, noise_std=0.1
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 16, c: int = 2, h: int = 8, w: int = 8) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(n, c, h, w) + 3.0  # no zeros, so zero fill is visible


@pytest.mark.parametrize(
    "kind,x,aug",
    [
        ("image", images(), ALL_IMAGE),
        ("image", images(h=6, w=10), ALL_IMAGE),
        ("sequence", torch.randn(8, 3, 64), AugmentSpec(translate=0.25, noise_std=0.5)),
        ("tabular", torch.randn(8, 5), AugmentSpec(noise_std=0.5)),
    ],
)
def test_shape_dtype_and_seeding(kind: str, x: torch.Tensor, aug: AugmentSpec) -> None:
    a = augment_batch(x, aug, kind, gen(1))
    b = augment_batch(x, aug, kind, gen(1))
    c = augment_batch(x, aug, kind, gen(2))
    assert a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_disabled_augmentations_are_the_identity() -> None:
    x = images()
    out = augment_batch(x, AugmentSpec(rotate=0, translate=0, crop_padding=0), "image", gen(0))
    assert torch.equal(out, x)
    seq = torch.randn(4, 1, 32)
    assert torch.equal(augment_batch(seq, AugmentSpec(), "sequence", gen(0)), seq)


def test_rotation_by_zero_degrees_is_identity() -> None:
    x = images()
    torch.testing.assert_close(rotate(x, torch.zeros(len(x))), x)


def test_rotation_by_90_matches_rot90() -> None:
    x = images(n=2, h=6, w=6)
    torch.testing.assert_close(rotate(x, torch.full((2,), 90.0)), torch.rot90(x, 1, (-2, -1)))
    # 180° on a non-square image is a double flip (the aspect ratio is handled)
    y = images(n=2, h=4, w=6)
    torch.testing.assert_close(rotate(y, torch.full((2,), 180.0)), y.flip(-1).flip(-2))


def test_flip_twice_with_p_one_is_identity_and_p_one_flips_all() -> None:
    x = images()
    once = flip(x, -1, 1.0, gen(0))
    assert torch.equal(once, x.flip(-1))
    assert torch.equal(flip(once, -1, 1.0, gen(1)), x)
    assert torch.equal(flip(x, -2, 0.0, gen(0)), x)


def test_hflip_flips_about_half_the_samples_and_nothing_else() -> None:
    x = images(n=400)
    out = augment_batch(x, AugmentSpec(hflip=True), "image", gen(0))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert (flipped | kept).all()
    assert 0.4 < flipped.float().mean().item() < 0.6


def test_crop_padding_values_come_from_the_padded_input() -> None:
    x = images(n=64)
    p = 2
    out = augment_batch(x, AugmentSpec(crop_padding=p), "image", gen(0))
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    shifts_seen = set()
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert matches, f"sample {i} is not a crop of the padded input"
        shifts_seen.add(matches[0])
    assert len(shifts_seen) > 10  # crops vary across the batch


def test_translate_zero_and_sequence_shift_is_a_zero_filled_shift() -> None:
    x = torch.arange(1, 11.0).repeat(6, 1, 1)  # (6, 1, 10), no zeros
    assert torch.equal(random_shift(x, (0,), gen(0)), x)
    out = augment_batch(x, AugmentSpec(translate=0.3), "sequence", gen(4))
    for row in out[:, 0]:
        nz = row[row != 0]
        # the surviving values are a contiguous run of the original, in order
        start = int(nz[0]) - 1
        assert torch.equal(nz, x[0, 0, start : start + len(nz)])
        assert len(nz) >= 7  # at most round(0.3·10) = 3 positions shifted out


def test_noise_std() -> None:
    x = torch.zeros(64, 1, 32, 32)
    out = augment_batch(x, AugmentSpec(noise_std=0.7), "image", gen(0))
    assert abs(out.std().item() - 0.7) < 0.01 and abs(out.mean().item()) < 0.01
    assert torch.equal(add_noise(x, 0.3, gen(5)), add_noise(x, 0.3, gen(5)))


def test_generator_state_only_no_global_rng() -> None:
    x = images()
    torch.manual_seed(11)
    expected = torch.rand(2)
    torch.manual_seed(11)
    augment_batch(x, ALL_IMAGE, "image", gen(0))
    assert torch.equal(torch.rand(2), expected)


def _chain(x: torch.Tensor, aug: AugmentSpec, seed: int) -> torch.Tensor:
    """The oracle: crop → hflip → vflip → rotate as separate ops, from the same (N, 7) draw."""
    u = torch.rand(len(x), 7, generator=gen(seed))
    p = aug.crop_padding
    sy, sx = ((u[:, i] * (2 * p + 1)).floor() - p for i in (0, 1))
    out = _shift_axis(_shift_axis(x, -2, sy.long()), -1, sx.long())
    if aug.hflip:
        out = torch.where((u[:, 2] < 0.5).view(-1, 1, 1, 1), out.flip(-1), out)
    if aug.vflip:
        out = torch.where((u[:, 3] < 0.5).view(-1, 1, 1, 1), out.flip(-2), out)
    if aug.rotate > 0:
        out = rotate(out, (u[:, 4] * 2 - 1) * aug.rotate)
    return out


def test_fused_crop_and_flips_equal_the_chain_exactly() -> None:
    x = images(n=64, h=6, w=10)
    aug = AugmentSpec(crop_padding=2, hflip=True, vflip=True)
    assert torch.equal(augment_batch(x, aug, "image", gen(3)), _chain(x, aug, 3))


@pytest.mark.parametrize(
    "hw,aug",
    [
        ((6, 10), AugmentSpec(crop_padding=2, hflip=True, vflip=True, rotate=30)),
        ((8, 8), AugmentSpec(crop_padding=1, rotate=10)),  # the digits recipe
        ((6, 10), AugmentSpec(crop_padding=12, rotate=45)),  # shifts past the whole image
        ((7, 5), AugmentSpec(hflip=True, rotate=90)),
        ((8, 8), AugmentSpec(rotate=20)),
    ],
)
def test_fused_rotation_equals_the_chain_of_single_resamplings(hw, aug: AugmentSpec) -> None:
    # one grid_sample through crop, flips and rotation equals the chain of single ops: the
    # crop's integer shift and the flips keep the bilinear weights, and what the crop cuts
    # away is zeroed before, so the rotation cannot bring it back
    x = images(n=64, h=hw[0], w=hw[1])
    out = augment_batch(x, aug, "image", gen(5))
    torch.testing.assert_close(out, _chain(x, aug, 5), atol=1e-5, rtol=1e-5)
