"""Generated upload files (bytes) in every format, good and hostile."""

from __future__ import annotations

import io
import tarfile
import zipfile

import httpx
import numpy as np


def upload(c: httpx.Client, filename: str, data: bytes, **form: str) -> httpx.Response:
    return c.post(
        "/datasets", files={"file": (filename, data, "application/octet-stream")}, data=form
    )


def npz(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def images(n: int = 24, k: int = 3, hw: tuple[int, int] = (8, 8), seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 3, *hw), dtype=np.uint8)
    return x, (np.arange(n) % k).astype(np.int64)


def png(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    """arr: (H, W, 3) or (H, W) uint8."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def class_tree(per_class: dict[str, list[np.ndarray]], ext: str = "png") -> dict[str, bytes]:
    fmt = "PNG" if ext == "png" else "JPEG"
    return {
        f"{c}/{i:03d}.{ext}": png(a, fmt)
        for c, arrs in per_class.items()
        for i, a in enumerate(arrs)
    }


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_of(
    members: dict[str, bytes], mode: str = "w", links: dict[str, str] | None = None
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def parquet(columns: dict[str, np.ndarray | list]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf, row_group_size=7)  # several row groups
    return buf.getvalue()
