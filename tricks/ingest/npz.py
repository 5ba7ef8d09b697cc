"""`.npz` uploads (np.savez or np.savez_compressed), read from disk a block of rows at a time.

The zip directory is checked first: only x.npy, y.npy, x_val.npy, y_val.npy, each once,
stored or deflated, declaring at most `max_inflated_bytes` in all (a zip bomb is refused
before anything is inflated; the reader, tricks.ingest.zipdir, never inflates a member past
its declared size and checks its CRC). The directory is read with at most MAX_ENTRIES
entries, so an archive of millions of tiny members costs nothing to refuse.
Each member's .npy header is read before its data: object dtypes (pickles) are refused by
dtype and never loaded, and the header's shape must account for exactly the member's
declared size (a header that lies about its rows is refused before any copy).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from tricks.ingest.common import (
    LabelStats,
    Plan,
    check_classes,
    check_counts,
    check_min_samples,
    check_sample_shape,
    check_x_block,
    label_dtype,
    make_meta,
    rows_per_block,
    stored_x_dtype,
)
from tricks.ingest.stored import MEMBERS, StagedDataset, npy_bytes
from tricks.ingest.zipdir import DEFLATED, STORED, Entry, ZipDirectory, ZipError
from tricks.spec import DatasetMeta
from tricks.uploads import UploadError

READ_ERRORS = (ZipError, OSError, ValueError, EOFError, zlib.error, NotImplementedError)
METHODS = (STORED, DEFLATED)
MAX_ENTRIES = 16  # x, y, x_val, y_val; a few more only to name the unexpected one


@dataclass
class Member:
    key: str
    info: Entry
    shape: tuple[int, ...]
    dtype: np.dtype


def _members(zd: ZipDirectory, limit: int) -> dict[str, Entry]:
    allowed = {f"{m}.npy" for m in MEMBERS}
    found: dict[str, Entry] = {}
    for info in zd.entries():
        if info.name not in allowed:
            raise UploadError(
                f"unexpected member '{info.name}' in the .npz; only x, y, x_val, y_val are allowed",
                info.name,
            )
        key = info.name[: -len(".npy")]
        if key in found:  # a zip may repeat a name; reading "the last one" would be a guess
            raise UploadError(
                f"the .npz holds '{info.name}' more than once; each of x, y, x_val, "
                "y_val may appear at most once",
                key,
            )
        if info.method not in METHODS or info.flags & 0x1:
            raise UploadError(
                f"'{key}' is encrypted or compressed with method {info.method}; save "
                "with np.savez or np.savez_compressed",
                key,
            )
        found[key] = info
    total = sum(i.size for i in found.values())
    if total > limit:
        raise UploadError(
            f"the .npz inflates to {total} bytes, above the {limit} byte limit "
            f"(compressed {sum(i.compressed for i in found.values())} bytes)"
        )
    return found


def _header(f: IO[bytes], info: Entry, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the .npy header, checked against the member's declared size."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=10_000)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=10_000)
    else:
        raise UploadError(f"'{key}' uses .npy format {version}, which is not supported", key)
    stored_x_dtype(dtype, key)  # refuses object / non-numeric dtypes by name
    if fortran and len(shape) > 1:
        raise UploadError(
            f"'{key}' is saved in Fortran order; save np.ascontiguousarray({key}) instead", key
        )
    header_len = f.tell()
    data = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if header_len + data != info.size:
        raise UploadError(
            f"'{key}' is truncated or corrupt: its header says shape {list(shape)} of {dtype} "
            f"({data} bytes), but the member holds {info.size - header_len} bytes of data",
            key,
        )
    return tuple(int(s) for s in shape), dtype


def _blocks(zf: ZipDirectory, m: Member):
    """(first_row, rows) blocks of a member, read (never allocated) from the stream."""
    row_items = int(np.prod(m.shape[1:], dtype=np.int64)) if len(m.shape) > 1 else 1
    row_bytes = row_items * m.dtype.itemsize
    step = rows_per_block(row_bytes)
    n = m.shape[0] if m.shape else 1
    try:
        with zf.open(m.info) as f:
            _header(f, m.info, m.key)
            for start in range(0, n, step):
                rows = min(step, n - start)
                raw = f.read(rows * row_bytes)
                if len(raw) != rows * row_bytes:
                    raise UploadError(
                        f"'{m.key}' is truncated or corrupt: the data ends at row {start + len(raw) // max(1, row_bytes)} "
                        f"of {n}",
                        m.key,
                    )
                yield start, np.frombuffer(raw, dtype=m.dtype).reshape((rows, *m.shape[1:]))
    except UploadError:
        raise
    except READ_ERRORS as e:
        raise UploadError(f"'{m.key}' is truncated or corrupt: {e}", m.key) from None


def read_npz(
    path: Path, filename: str, dataset_id: str, st: StagedDataset, plan: Plan
) -> DatasetMeta:
    try:
        zf = ZipDirectory(path, max_entries=MAX_ENTRIES)
    except READ_ERRORS as e:
        raise UploadError(f"not a readable .npz (zip) archive: {e}") from None
    with zf:
        infos = _members(zf, plan.limits.max_inflated_bytes)
        members: dict[str, Member] = {}
        for key, info in infos.items():
            try:
                with zf.open(info) as f:
                    shape, dtype = _header(f, info, key)
            except UploadError:
                raise
            except READ_ERRORS as e:
                raise UploadError(f"'{key}' is truncated or corrupt: {e}", key) from None
            members[key] = Member(key, info, shape, dtype)
        return _copy(zf, members, filename, dataset_id, st, plan)


def _check_shapes(members: dict[str, Member]) -> None:
    for key in ("x", "y"):
        if key not in members:
            raise UploadError(f"the upload has no '{key}' array; it needs x and y", key)
    if ("x_val" in members) != ("y_val" in members):
        missing = "y_val" if "x_val" in members else "x_val"
        raise UploadError(f"x_val and y_val come together; '{missing}' is missing", missing)
    x, y = members["x"], members["y"]
    check_sample_shape(x.shape, "x")
    for key in ("y", "y_val"):
        if key in members and len(members[key].shape) != 1:
            raise UploadError(
                f"'{key}' has shape {list(members[key].shape)}; labels must be 1-D (N,)", key
            )
    check_counts(x.shape[0], y.shape[0])
    check_min_samples(y.shape[0])
    if "x_val" in members:
        xv, yv = members["x_val"], members["y_val"]
        if xv.shape[1:] != x.shape[1:]:
            raise UploadError(
                f"x_val samples have shape {list(xv.shape[1:])}, x samples {list(x.shape[1:])}; they must match",
                "x_val",
            )
        check_counts(xv.shape[0], yv.shape[0], "x_val", "y_val")
        if yv.shape[0] == 0:
            raise UploadError(
                "x_val/y_val are empty; leave them out to split off a validation set", "y_val"
            )


def _copy(
    zf: ZipDirectory,
    members: dict[str, Member],
    filename: str,
    dataset_id: str,
    st: StagedDataset,
    plan: Plan,
) -> DatasetMeta:
    _check_shapes(members)
    max_k = plan.limits.max_classes
    stats = {}
    for key in ("y", "y_val"):  # labels first: small, and they decide their stored dtype
        if key in members:
            stats[key] = LabelStats(key, max_k)
            for _, block in _blocks(zf, members[key]):
                stats[key].add(block)
    counts = check_classes(stats["y"].counts, stats["y_val"].counts if "y_val" in stats else None)
    y_dtype = label_dtype(len(counts))
    x_dtype = stored_x_dtype(members["x"].dtype)
    if "x_val" in members and members["x_val"].dtype != members["x"].dtype:
        x_dtype = np.result_type(x_dtype, stored_x_dtype(members["x_val"].dtype))
        x_dtype = stored_x_dtype(x_dtype)
    dtypes = {"x": x_dtype, "x_val": x_dtype, "y": y_dtype, "y_val": y_dtype}
    total = sum(npy_bytes(dtypes[k], m.shape) for k, m in members.items())
    plan.reserve(total)
    for key, m in members.items():
        w = st.array(key, dtypes[key], m.shape)
        for start, block in _blocks(zf, m):
            if key.startswith("x"):
                w.write(check_x_block(block, dtypes[key], key, start))
            else:
                w.write(block.astype(y_dtype))
        w.close()
    x = members["x"]
    return make_meta(
        dataset_id,
        filename,
        sample_shape=x.shape[1:],
        dtype=x_dtype,
        class_counts=counts,
        n=x.shape[0],
        n_val=members["x_val"].shape[0] if "x_val" in members else None,
        stored_bytes=total,
    )
