"""Image archives (.zip, .tar, .tar.gz): one folder per class of PNG/JPEG files.

`cats/001.png, dogs/002.jpg, ...` (optionally under one top folder). Class names are
sorted into label ids. Pass 1 reads only names and image headers: it refuses path
traversal, links, nested archives and non-image files by name, checks every image's
size against the per-image and total pixel budgets BEFORE anything is decoded (the
defence against decompression bombs; Image.MAX_IMAGE_PIXELS is set too), and learns the
stored shape. Pass 2 decodes each image, turns it upright by its EXIF Orientation (a
phone's JPEG is stored as it was shot, rotated on display), converts it to RGB (L when
every image is grayscale), resizes it when a size was asked for, and writes uint8
(N, C, H, W). 16-bit grayscale PNGs keep their 16 bits (uint16, one channel) when every
image of the archive is one; otherwise each keeps its high byte (v >> 8), which is what
Pillow already does for 16-bit colour PNGs. Members are visited in archive order both
times, so a .tar.gz is streamed, never seeked. A .zip is read with zipdir, which keeps a
few bytes per member where zipfile keeps a ZipInfo object each, and pass 2 reads every
member to its end so that its CRC-32 is checked.
"""

from __future__ import annotations

import posixpath
import tarfile
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from tricks.ingest.common import (
    BLOCK_BYTES,
    Plan,
    check_classes,
    check_min_samples,
    label_dtype,
    make_meta,
)
from tricks.ingest.stored import StagedDataset, npy_bytes
from tricks.ingest.zipdir import DEFLATED, STORED, ZipDirectory, ZipError, drain
from tricks.spec import DatasetMeta
from tricks.uploads import UploadError

IMAGE_EXT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
ARCHIVE_EXT = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".npz")
GRAY = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
GRAY16 = {"I", "I;16", "I;16B", "I;16L", "I;16N"}  # what Pillow opens a 16-bit gray PNG as
U8 = np.dtype(np.uint8)
U16 = np.dtype(np.uint16)
ORIENTATION = 0x0112  # the EXIF tag
TRANSPOSED = {5, 6, 7, 8}  # orientations that swap width and height


def is_archive(name: str) -> bool:
    n = name.lower()
    return n.endswith((".zip", ".tar", ".tar.gz", ".tgz"))


def _members(path: Path, filename: str, plan: Plan) -> Iterator[tuple[str, int, IO[bytes] | None]]:
    """(name, declared bytes, file object or None for a directory), in archive order.

    Links, devices and encrypted or oddly compressed members are refused by name."""
    if filename.lower().endswith(".zip"):
        try:  # zipdir, not zipfile: a few bytes per member, not a ZipInfo object each
            zd = ZipDirectory(path, max_entries=2 * plan.limits.max_images + 65536)
        except (ZipError, OSError) as e:
            raise UploadError(f"not a readable .zip archive: {e}") from None
        with zd:
            for info in zd.entries():
                mode = info.mode & 0o170000
                if mode in (0o120000, 0o020000, 0o060000, 0o010000, 0o140000):
                    raise UploadError(
                        f"'{info.name}' is a link or special file; only image files are accepted"
                    )
                if info.is_dir:
                    yield info.name, 0, None
                    continue
                if info.flags & 0x1 or info.method not in (STORED, DEFLATED):
                    raise UploadError(
                        f"'{info.name}' is encrypted or uses an unsupported compression"
                    )
                with zd.open(info) as f:
                    yield info.name, info.size, f
        return
    try:
        tf = tarfile.open(path, mode="r|*")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise UploadError(f"not a readable .tar archive: {e}") from None
    with tf:
        for m in tf:
            if m.isdir():
                yield m.name, 0, None
            elif not m.isfile():
                raise UploadError(
                    f"'{m.name}' is a link or special file; only image files are accepted"
                )
            else:
                member = tf.extractfile(m)
                assert member is not None
                yield m.name, m.size, member


def _checked_name(name: str) -> list[str] | None:
    """The path's parts, None for what is skipped (hidden files, __MACOSX); 422 for traversal."""
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UploadError(
            f"'{name}' is an absolute or Windows path; archive paths must be relative"
        )
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts or posixpath.isabs(name):
        raise UploadError(
            f"'{name}' leaves the archive (path traversal); paths must stay inside it"
        )
    if not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return None
    return parts


def _walk(path: Path, filename: str, plan: Plan, on_image, verify: bool = False) -> int:
    """Visit every image member: check its name and declared size, call on_image(name, parts, f).

    With `verify`, each image is then read to its end, so that a .zip member's CRC-32 is
    checked (Pillow stops before a PNG's last bytes); only images, which the inflated
    budget counts, never a skipped member."""
    lim = plan.limits
    inflated = 0
    count = 0
    try:
        for name, size, f in _members(path, filename, plan):
            parts = _checked_name(name)
            if parts is None or f is None:
                continue
            low = parts[-1].lower()
            ext = posixpath.splitext(low)[1]
            if low.endswith(ARCHIVE_EXT):
                raise UploadError(
                    f"'{name}' is a nested archive; put the image files in the archive itself"
                )
            if ext not in IMAGE_EXT:
                raise UploadError(
                    f"'{name}' is not a PNG or JPEG file (by its name); only images are accepted"
                )
            inflated += size
            if inflated > lim.max_inflated_bytes:
                raise UploadError(
                    f"the archive inflates to more than the {lim.max_inflated_bytes} byte limit (at '{name}')"
                )
            count += 1
            if count > lim.max_images:
                raise UploadError(f"the archive holds more than {lim.max_images} images")
            on_image(name, parts, f)
            if verify:
                drain(f)
    except UploadError:
        raise
    except (tarfile.TarError, ZipError, OSError, EOFError, ValueError) as e:
        raise UploadError(f"the archive is truncated or corrupt: {e}") from None
    return count


def _open(f: IO[bytes], name: str, lim):
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = lim.max_image_pixels
    try:
        img = Image.open(f, formats=["PNG", "JPEG"])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UploadError(f"'{name}' is not a readable PNG or JPEG image: {e}") from None
    except Image.DecompressionBombError:
        raise UploadError(
            f"'{name}' is larger than the {lim.max_image_pixels} pixel limit per image"
        ) from None
    w, h = img.size
    if w * h > lim.max_image_pixels or w < 1 or h < 1:
        raise UploadError(
            f"'{name}' is {w}x{h} pixels, above the {lim.max_image_pixels} pixel limit per image"
        )
    return img


def _orientation(img) -> int:
    """The EXIF Orientation (1..8) the header holds; 1 when absent or unreadable.

    A PNG's eXIf chunk counts only when it comes before the pixel data: Pillow would
    decode the whole image to find one after it, and pass 1 decodes nothing. Both passes
    call this, so they always agree on the stored size."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - malformed metadata of an untrusted file: ignore it
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright_size(img) -> tuple[int, int]:
    w, h = img.size
    return (h, w) if _orientation(img) in TRANSPOSED else (w, h)


class _Scan:
    """Pass 1 state, compact (a label id per image, not an object): names, classes, sizes."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.first: tuple[str, tuple[int, int]] | None = None
        self.top: str | None = None  # the one folder above the class folders, if any
        self.depth = 0
        self.class_ids: dict[str, int] = {}
        self.labels = array("i")  # 4 bytes an image, not an 8-byte pointer
        self.all_gray = True
        self.all_16 = True
        self.pixels = 0

    def on_image(self, name: str, parts: list[str], f: IO[bytes]) -> None:
        lim = self.plan.limits
        img = _open(f, name, lim)
        self.pixels += img.size[0] * img.size[1]
        if self.pixels > lim.max_total_pixels:
            raise UploadError(
                f"the images hold more than the {lim.max_total_pixels} pixel limit in all"
            )
        size = _upright_size(img)
        if self.first is None:
            self.first = (name, size)
            self.depth = len(parts)
            self.top = parts[0] if len(parts) == 3 else None
        if (
            len(parts) != self.depth
            or self.depth not in (2, 3)
            or (self.top and parts[0] != self.top)
        ):
            raise UploadError(
                f"'{name}' is not in a class folder; use <class>/<image> (one folder per class)"
            )
        if self.plan.image_size is None and size != self.first[1]:
            (w, h), (w0, h0) = size, self.first[1]
            raise UploadError(
                f"'{name}' is {w}x{h} but '{self.first[0]}' is {w0}x{h0}; images must share one "
                "size, or send image_size (e.g. 32 or 32x32) to resize them"
            )
        cls = parts[-2]
        self.labels.append(self.class_ids.setdefault(cls, len(self.class_ids)))
        self.all_gray = self.all_gray and img.mode in GRAY
        self.all_16 = self.all_16 and img.mode in GRAY16

    def result(self) -> tuple[np.ndarray, list[str], tuple[int, int, int], np.dtype]:
        if self.first is None:
            raise UploadError(
                "the archive holds no PNG or JPEG images; put them in one folder per class"
            )
        classes = sorted(self.class_ids)
        remap = np.array([classes.index(c) for c in self.class_ids], dtype=np.int64)
        labels = remap[np.asarray(self.labels, dtype=np.int64)]
        c = 1 if self.all_gray else 3
        h, w = self.plan.image_size or (self.first[1][1], self.first[1][0])
        return labels, classes, (c, h, w), U16 if self.all_16 else U8


def read_archive(
    path: Path, filename: str, dataset_id: str, st: StagedDataset, plan: Plan
) -> DatasetMeta:
    scan = _Scan(plan)
    _walk(path, filename, plan, scan.on_image)  # pass 1: names and headers, nothing decoded
    labels, classes, (c, h, w), x_dtype = scan.result()
    n = len(labels)
    check_min_samples(n)
    class_counts = check_classes(np.bincount(labels, minlength=len(classes)), None)
    y_dtype = label_dtype(len(classes))
    total = npy_bytes(x_dtype, (n, c, h, w)) + npy_bytes(y_dtype, (n,))
    plan.reserve(total)
    st.array("y", y_dtype, (n,)).write(labels.astype(y_dtype))
    wx = st.array("x", x_dtype, (n, c, h, w))
    per_block = max(1, BLOCK_BYTES // (c * h * w * x_dtype.itemsize))
    block = np.empty((min(per_block, n), c, h, w), dtype=x_dtype)  # filled, written, reused
    filled = 0

    def on_image(name: str, parts: list[str], f: IO[bytes]) -> None:
        nonlocal filled
        if wx.rows + filled >= n:
            raise UploadError(f"the archive changed while it was read ('{name}')")
        block[filled] = _decode(f, name, (c, h, w), x_dtype, plan)
        filled += 1
        if filled == len(block):
            wx.write(block)
            filled = 0

    _walk(path, filename, plan, on_image, verify=True)  # pass 2: decode, CRCs checked
    if filled:
        wx.write(block[:filled])
    wx.close()
    return make_meta(
        dataset_id, filename, sample_shape=(c, h, w), dtype=x_dtype, class_counts=class_counts,
        n=n, n_val=None, stored_bytes=total, classes=classes,
    )  # fmt: skip


def _decode(
    f: IO[bytes], name: str, shape: tuple[int, int, int], dtype: np.dtype, plan: Plan
) -> np.ndarray:
    """One image as (C, H, W) of the stored dtype: upright, converted, resized."""
    from PIL import Image, ImageOps

    c, h, w = shape
    img = _open(f, name, plan.limits)
    try:
        if _orientation(img) != 1:
            img = ImageOps.exif_transpose(img)
        if img.mode in GRAY16:
            img = img.convert("I")  # 32-bit ints holding the 16-bit values (0..65535)
            if dtype == U16:
                if img.size != (w, h):
                    img = img.resize((w, h), Image.Resampling.BILINEAR)
                return np.clip(np.asarray(img), 0, 65535).astype(np.uint16)[None]
            # an 8-bit archive: keep the high byte (convert("L") would clip at 255)
            img = Image.fromarray((np.clip(np.asarray(img), 0, 65535) >> 8).astype(np.uint8))
        img = img.convert("L" if c == 1 else "RGB")
        if img.size != (w, h):
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:
        raise UploadError(f"'{name}' is truncated or corrupt: {err}") from None
    return arr[None] if c == 1 else arr.transpose(2, 0, 1)
