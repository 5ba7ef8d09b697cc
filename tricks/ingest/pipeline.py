"""One entry point: a file on disk in, a stored dataset directory and its meta out.

The API streams an upload to a staging file, then calls `ingest_file` (in a thread: it
is CPU and disk work). Any failure, ours or the quota hook's, leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tricks.ingest.common import IngestLimits, Plan
from tricks.ingest.images import is_archive, read_archive
from tricks.ingest.npz import read_npz
from tricks.ingest.stored import StagedDataset
from tricks.ingest.tabular import read_csv, read_parquet
from tricks.spec import DatasetMeta
from tricks.uploads import UploadError

FORMATS = ".npz (x, y[, x_val, y_val]), .csv or .parquet with a label column, or a .zip/.tar/.tar.gz of one folder per class of PNG/JPEG images"


def parse_image_size(value: str | int | None) -> tuple[int, int] | None:
    """ "32" or "32x32" (height x width) -> (h, w); None when not given; 422 at image_size."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    parts = text.split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) not in (1, 2) or not all(1 <= v <= 1024 for v in nums):
        raise UploadError(
            f"image_size '{str(value)[:20]}' is not a size like 32 or 32x32 (1..1024)", "image_size"
        )
    return (nums[0], nums[-1])


def reader_for(filename: str):
    name = filename.lower()
    if name.endswith(".npz"):
        return read_npz
    if name.endswith(".csv"):
        return read_csv
    if name.endswith(".parquet"):
        return read_parquet
    if is_archive(name):
        return read_archive
    if name.endswith(".npy"):
        raise UploadError(
            "a bare .npy holds one array and no labels; save x and y together with "
            "np.savez('data.npz', x=x, y=y) and upload the .npz"
        )
    raise UploadError(f"'{filename[:100]}' is not a supported dataset file; upload {FORMATS}")


def ingest_file(
    path: Path,
    filename: str,
    *,
    datasets_dir: Path,
    dataset_id: str,
    limits: IngestLimits | None = None,
    image_size: tuple[int, int] | None = None,
    reserve: Callable[[int], None] | None = None,
) -> DatasetMeta:
    """Parse the upload at `path` into `{datasets_dir}/{dataset_id}/`; its meta.

    `reserve(stored_bytes)` is called once the exact stored size is known and before any
    array data is written: raise there to refuse (the quota). UploadError names the field."""
    read = reader_for(filename)
    if image_size is not None and read is not read_archive:
        raise UploadError("image_size applies to image archives (.zip/.tar) only", "image_size")
    plan = Plan(limits=limits or IngestLimits(), image_size=image_size)
    if reserve is not None:
        plan.reserve = reserve
    with StagedDataset(datasets_dir, dataset_id) as st:
        meta = read(path, filename, dataset_id, st, plan)
        st.commit()
    return meta
