"""The stored layout of an uploaded dataset, and the one way to write and read it.

numpy only (the API writes it, workers read it). A dataset is a directory
`{datasets_dir}/{id}/` of plain .npy files (x, y[, x_val, y_val]) in their native
dtype, C order, uncompressed, so a worker can memory-map them. It is written as
`.{id}.tmp-XXXX/` and renamed into place, so nothing half-written is ever visible.
Old deployments stored `{id}.npz` (float32 x, int64 y); it is still read.

Writes go through `StagedDataset`, which writes each array row block by row block
with plain file writes (no memory map: dirty mapped pages would count in the API's
resident memory), so memory stays bounded whatever the dataset's size.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Literal

import numpy as np

MEMBERS = ("x", "y", "x_val", "y_val")


def dataset_dir(datasets_dir: Path, dataset_id: str) -> Path:
    return Path(datasets_dir) / dataset_id


def legacy_path(datasets_dir: Path, dataset_id: str) -> Path:
    return Path(datasets_dir) / f"{dataset_id}.npz"


def open_stored(datasets_dir: Path, dataset_id: str, *, mmap: bool = True) -> dict[str, np.ndarray]:
    """{"x", "y"[, "x_val", "y_val"]} of a stored dataset, never unpickling anything.

    The directory layout is memory-mapped read-only when `mmap` (the default); the legacy
    .npz is read fully. Raises FileNotFoundError when neither exists."""
    d = dataset_dir(datasets_dir, dataset_id)
    if d.is_dir():
        mode: Literal["r"] | None = "r" if mmap else None
        out = {}
        for key in MEMBERS:
            p = d / f"{key}.npy"
            if p.exists():
                out[key] = np.load(p, mmap_mode=mode, allow_pickle=False)
        if "x" not in out or "y" not in out:
            raise FileNotFoundError(
                errno.ENOENT, f"dataset '{dataset_id}' has no x.npy and y.npy", str(d)
            )
        return out
    legacy = legacy_path(datasets_dir, dataset_id)
    if legacy.is_file():
        with np.load(legacy, allow_pickle=False) as z:
            return {k: z[k] for k in MEMBERS if k in z.files}
    # errno + filename: the worker names the missing dataset from them (worker/errors.py)
    raise FileNotFoundError(errno.ENOENT, f"dataset '{dataset_id}' is not stored", str(d))


def stored_paths(datasets_dir: Path, dataset_id: str) -> list[Path]:
    """Every file a stored dataset may be in, in either layout (they need not exist)."""
    d = dataset_dir(datasets_dir, dataset_id)
    return [d / f"{m}.npy" for m in MEMBERS] + [legacy_path(datasets_dir, dataset_id)]


def stored_bytes(datasets_dir: Path, dataset_id: str) -> int:
    """Bytes on disk of the stored arrays (the directory's .npy files, or the legacy .npz)."""
    d = dataset_dir(datasets_dir, dataset_id)
    if d.is_dir():
        return sum(p.stat().st_size for p in d.glob("*.npy"))
    legacy = legacy_path(datasets_dir, dataset_id)
    if legacy.is_file():
        return legacy.stat().st_size
    raise FileNotFoundError(f"dataset '{dataset_id}' is not stored in {datasets_dir}")


def remove_stored(datasets_dir: Path, dataset_id: str) -> None:
    """Delete a stored dataset in either layout (missing is fine)."""
    shutil.rmtree(dataset_dir(datasets_dir, dataset_id), ignore_errors=True)
    legacy_path(datasets_dir, dataset_id).unlink(missing_ok=True)


def sweep_staging(
    datasets_dir: Path, *, older_than_s: float = 6 * 3600, now: float | None = None
) -> list[str]:
    """Remove what a crashed API left: `.{id}.tmp-*` dirs and `.upload-*.part` files not
    modified for `older_than_s` (a live upload or ingest writes to its own all along)."""
    d = Path(datasets_dir)
    if not d.is_dir():
        return []
    now = time.time() if now is None else now
    gone = []
    for p in d.iterdir():
        name = p.name
        if not (name.startswith(".upload-") or (name.startswith(".") and ".tmp-" in name)):
            continue
        try:
            if now - p.stat().st_mtime < older_than_s:
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        except FileNotFoundError:
            continue
        gone.append(name)
    return sorted(gone)


def npy_bytes(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """The size of a .npy file of this dtype and shape, as ArrayWriter writes it."""
    return (
        _header_len(dtype, shape) + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    )


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> dict:
    return {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(shape),
    }


def _header_len(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, _header(dtype, shape))
    return len(buf.getvalue())  # magic, version and the padded header


class ArrayWriter:
    """Writes one .npy of a known dtype and shape, a block of rows at a time, in order."""

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.rows = 0
        self.fh: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed by close()
        np.lib.format.write_array_header_1_0(self.fh, _header(self.dtype, self.shape))

    def write(self, block: np.ndarray) -> None:
        """Append rows (cast to the stored dtype, which the caller has checked is safe)."""
        if block.shape[1:] != self.shape[1:]:
            raise ValueError(f"rows of shape {block.shape[1:]} for an array of {self.shape}")
        if self.rows + len(block) > self.shape[0]:
            raise ValueError(f"more than the {self.shape[0]} declared rows")
        self.fh.write(np.ascontiguousarray(block, dtype=self.dtype).data)  # no copy
        self.rows += len(block)

    def close(self) -> None:
        if self.fh.closed:
            return
        try:
            if self.rows != self.shape[0]:
                raise ValueError(f"{self.path.name}: {self.rows} rows written of {self.shape[0]}")
            self.fh.flush()
            os.fsync(self.fh.fileno())
        finally:
            self.fh.close()


class StagedDataset:
    """`.{id}.tmp-XXXX/` in the datasets dir: arrays are written into it, then `commit`
    renames it to `{id}/` (atomic); `discard` removes it. Use it as a context manager:
    leaving the block without a commit discards everything."""

    def __init__(self, datasets_dir: Path, dataset_id: str) -> None:
        self.datasets_dir = Path(datasets_dir)
        self.dataset_id = dataset_id
        self.datasets_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{dataset_id}.tmp-", dir=self.datasets_dir))
        self.writers: dict[str, ArrayWriter] = {}
        self.committed = False

    def array(self, key: str, dtype: np.dtype, shape: tuple[int, ...]) -> ArrayWriter:
        if key not in MEMBERS or key in self.writers:
            raise ValueError(f"cannot write '{key}'")
        w = ArrayWriter(self.tmp / f"{key}.npy", dtype, shape)
        self.writers[key] = w
        return w

    def commit(self) -> Path:
        for w in self.writers.values():
            w.close()
        final = dataset_dir(self.datasets_dir, self.dataset_id)
        os.rename(self.tmp, final)  # fails (never merges) when the id exists
        self.committed = True
        return final

    def discard(self) -> None:
        for w in self.writers.values():
            if not w.fh.closed:
                w.fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> StagedDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.discard()
