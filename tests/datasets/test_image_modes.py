"""EXIF orientation and 16-bit PNGs in image archives, over HTTP.

Oracles are made independently of the ingest code: numpy flips, rotations and transposes
of the source pixels for the EXIF cases (the specification's table, every orientation), hand-written values (0x1234 -> 0x12 ...) for the 16-bit ones. The PNGs
with 16-bit samples are written byte by byte here (Pillow cannot write 16-bit RGB).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from support import assert_error

from tests.datasets.files import upload, zip_of
from tests.datasets.test_formats import created, stored_arrays


def blocks(h: int, w: int, seed: int) -> np.ndarray:
    """(h, w, 3) uint8 of flat 8x8 colour blocks: JPEG keeps them within a few levels."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return cells.repeat(8, axis=0).repeat(8, axis=1)


def tagged(arr: np.ndarray, orientation: int, fmt: str) -> bytes:
    """arr saved as JPEG/PNG with an EXIF Orientation tag (0x0112)."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    extra = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    Image.fromarray(arr).save(buf, format=fmt, exif=exif.tobytes(), **extra)
    return buf.getvalue()


def test_exif_orientation_is_applied(ds_api, client):
    # Sources are 16 high x 24 wide; orientations 6 and 8 swap that to 24 x 16, which
    # the untagged class has: without the rotation the sizes would not even agree.
    src = {(c, i): blocks(16, 24, seed=10 * j + i) for j, c in enumerate("abc") for i in range(4)}
    upright = {}
    members = {}
    for i in range(4):
        members[f"a/{i}.jpg"] = tagged(src["a", i], 6, "JPEG")  # "rotate 90 clockwise"
        upright["a", i] = np.rot90(src["a", i], k=-1)
        members[f"b/{i}.png"] = tagged(src["b", i], 8, "PNG")  # "rotate 90 counter-clockwise"
        upright["b", i] = np.rot90(src["b", i], k=1)
        rot = np.ascontiguousarray(np.rot90(src["c", i], k=1))  # stored upright already
        members[f"c/{i}.png"] = tagged(rot, 1, "PNG")
        upright["c", i] = rot
    ds = created(upload(client, "exif.zip", zip_of(members)))
    assert ds["input_shape"] == [3, 24, 16] and ds["classes"] == ["a", "b", "c"]
    a = stored_arrays(ds_api, ds["id"])
    per_class = {0: [], 1: [], 2: []}
    for img, label in zip(a["x"], a["y"], strict=True):
        per_class[int(label)].append(img.transpose(1, 2, 0).astype(np.int16))
    for label, cls in enumerate("abc"):
        for i, got in enumerate(per_class[label]):  # archive order within a class
            want = upright[cls, i].astype(np.int16)
            diff = np.abs(got - want)
            if cls == "a":  # JPEG: within its tolerance, and far from the unrotated source
                assert diff.mean() < 3 and diff.max() < 40, (cls, i, diff.mean())
                wrong = np.rot90(src[cls, i], k=1).astype(np.int16)  # the other way round
                assert np.abs(got - wrong).mean() > 30
            else:  # PNG: exact
                assert diff.max() == 0, (cls, i)


# What each EXIF Orientation asks of the stored (H, W, C) pixels to show them upright, from
# the EXIF 2.32 specification's table (the row-0 / column-0 positions), written with numpy.
UPRIGHT = {
    1: lambda a: a,
    2: np.fliplr,  # mirror horizontal
    3: lambda a: np.rot90(a, 2),  # rotate 180
    4: np.flipud,  # mirror vertical
    5: lambda a: a.transpose(1, 0, 2),  # transpose: the main diagonal
    6: lambda a: np.rot90(a, -1),  # rotate 90 clockwise
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),  # transverse: the anti-diagonal
    8: lambda a: np.rot90(a, 1),  # rotate 90 counter-clockwise (270 clockwise)
}


def test_the_orientation_oracle_agrees_with_the_specs_other_wording():
    """5 and 7 are also "mirror horizontal, then rotate 270 / 90 clockwise": the two
    formulations agree, and on a non-square, asymmetric image the eight differ."""
    a = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(UPRIGHT[5](a), np.rot90(np.fliplr(a), 1))
    np.testing.assert_array_equal(UPRIGHT[7](a), np.rot90(np.fliplr(a), -1))
    assert UPRIGHT[7](a)[0, 0].tolist() == a[-1, -1].tolist()  # the far corner comes first
    outs = [UPRIGHT[o](a).tobytes() + bytes(UPRIGHT[o](a).shape) for o in range(1, 9)]
    assert len(set(outs)) == 8


def test_every_exif_orientation_is_applied(ds_api, client):
    """Orientations 2, 3, 4, 5, 7 (6 and 8 above), as PNG (exact) and JPEG (within its
    tolerance, and nearer the oracle than any other of the eight). Upright, every image is
    16 high x 24 wide, so 5 and 7 are stored 24 x 16; the pixels are asymmetric, so a wrong
    flip, rotation or diagonal shows."""
    rng = np.random.default_rng(7)
    src, members = {}, {}
    for o in (2, 3, 4, 5, 7):
        h, w = (24, 16) if o in (5, 7) else (16, 24)
        for i in range(3):
            src["png", o, i] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            members[f"png{o}/{i}.png"] = tagged(src["png", o, i], o, "PNG")
            src["jpg", o, i] = blocks(h, w, seed=100 * o + i)
            members[f"jpg{o}/{i}.jpg"] = tagged(src["jpg", o, i], o, "JPEG")
    ds = created(upload(client, "orient.zip", zip_of(members)))
    assert ds["input_shape"] == [3, 16, 24], ds
    a = stored_arrays(ds_api, ds["id"])
    seen: dict[str, int] = {}
    for img, label in zip(a["x"], a["y"], strict=True):
        cls = ds["classes"][int(label)]  # "png2", "jpg7", ...
        fmt, o = cls[:3], int(cls[3:])
        i = seen[cls] = seen.get(cls, -1) + 1  # archive order within a class
        got, stored = img.transpose(1, 2, 0).astype(np.int16), src[fmt, o, i]
        want = UPRIGHT[o](stored).astype(np.int16)
        if fmt == "png":
            np.testing.assert_array_equal(got, want, err_msg=f"orientation {o}, image {i}")
            continue
        assert np.abs(got - want).mean() < 3, (o, i, np.abs(got - want).mean())
        for other in range(1, 9):
            wrong = UPRIGHT[other](stored)
            if other != o and wrong.shape == got.shape:
                assert np.abs(got - wrong.astype(np.int16)).mean() > 30, (o, other, i)
    assert seen == {f"{f}{o}": 2 for f in ("png", "jpg") for o in (2, 3, 4, 5, 7)}


def test_exif_rotation_happens_before_the_size_check(ds_api, client):
    """A tagged image whose upright size differs from the others is refused with that size."""
    members = {f"a/{i}.png": tagged(blocks(16, 16, i), 1, "PNG") for i in range(6)}
    members.update({f"b/{i}.png": tagged(blocks(16, 16, 9 + i), 1, "PNG") for i in range(5)})
    members["b/odd.jpg"] = tagged(blocks(16, 24, 99), 6, "JPEG")  # upright: 16 wide, 24 high
    err = assert_error(upload(client, "odd.zip", zip_of(members)), 422)
    assert "b/odd.jpg" in err["message"] and "16x24" in err["message"], err


def png16(arr: np.ndarray) -> bytes:
    """A PNG of 16-bit samples: (H, W) grayscale (colour type 0) or (H, W, 3) RGB (type 2)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    h, w = arr.shape[:2]
    color = 0 if arr.ndim == 2 else 2
    raw = b"".join(b"\0" + arr[r].astype(">u2").tobytes() for r in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


GRAY16 = np.array([[0x0000, 0x00FF, 0x0100, 0x1234], [0x8000, 0xABCD, 0xFF00, 0xFFFF]], np.uint16)
# the high bytes, by hand: 0x00, 0x00, 0x01, 0x12 / 0x80, 0xAB, 0xFF, 0xFF
HIGH = np.array([[0, 0, 1, 18], [128, 171, 255, 255]], np.uint8)


def test_all_16_bit_gray_pngs_are_stored_as_uint16(ds_api, client):
    members = {f"p/{i}.png": png16(GRAY16) for i in range(5)}
    members.update({f"q/{i}.png": png16(GRAY16[::-1]) for i in range(5)})
    ds = created(upload(client, "deep.zip", zip_of(members)))
    assert ds["dtype"] == "uint16" and ds["input_shape"] == [1, 2, 4]
    a = stored_arrays(ds_api, ds["id"])
    assert a["x"].dtype == np.uint16
    for img, label in zip(a["x"], a["y"], strict=True):  # the values unchanged
        np.testing.assert_array_equal(img[0], GRAY16 if label == 0 else GRAY16[::-1])
    assert int(a["x"][0, 0, 0, 3]) == 4660  # 0x1234, not clipped to 255
    # the samples grid renders a uint16 dataset too
    r = client.get(f"/datasets/{ds['id']}/samples.png", params={"n": 4})
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_16_bit_gray_resized_stays_16_bit(ds_api, client):
    # uniform images: a resize of a uniform image is that same value (an exact oracle)
    members = {}
    for c, v in (("lo", 300), ("hi", 60000)):
        for i, hw in enumerate([(10, 10), (20, 14), (7, 30), (12, 12), (9, 9)]):
            members[f"{c}/{i}.png"] = png16(np.full(hw, v, np.uint16))
    ds = created(upload(client, "deep.tar.zip", zip_of(members), image_size="6x5"))
    assert ds["dtype"] == "uint16" and ds["input_shape"] == [1, 6, 5]
    a = stored_arrays(ds_api, ds["id"])
    for img, label in zip(a["x"], a["y"], strict=True):
        assert (img == (60000, 300)[label]).all()  # classes sorted: hi, lo


def test_16_bit_gray_among_8_bit_images_keeps_the_high_byte(ds_api, client):
    from tests.datasets.files import png

    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[..., 0] = 200  # 8-bit colour images make the archive RGB uint8
    members = {f"deep/{i}.png": png16(GRAY16) for i in range(5)}
    members.update({f"flat/{i}.png": png(rgb) for i in range(5)})
    ds = created(upload(client, "mixed.zip", zip_of(members)))
    assert ds["dtype"] == "uint8" and ds["input_shape"] == [3, 2, 4]
    a = stored_arrays(ds_api, ds["id"])
    for img, label in zip(a["x"], a["y"], strict=True):
        if label == 0:  # deep: gray, so the same high byte in all three channels
            for ch in range(3):
                np.testing.assert_array_equal(img[ch], HIGH)
        else:
            np.testing.assert_array_equal(img.transpose(1, 2, 0), rgb)


def test_16_bit_colour_pngs_keep_the_high_byte(ds_api, client):
    rgb16 = np.stack([GRAY16, GRAY16[::-1], np.full_like(GRAY16, 0x7FFF)], axis=-1)
    members = {f"{c}/{i}.png": png16(rgb16) for c in "uv" for i in range(5)}
    ds = created(upload(client, "rgb16.zip", zip_of(members)))
    assert ds["dtype"] == "uint8" and ds["input_shape"] == [3, 2, 4]
    x = stored_arrays(ds_api, ds["id"])["x"]
    np.testing.assert_array_equal(x[0, 0], HIGH)
    np.testing.assert_array_equal(x[0, 1], HIGH[::-1])
    assert (x[0, 2] == 0x7F).all()
