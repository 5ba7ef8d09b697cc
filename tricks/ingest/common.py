"""What every format's parser shares: limits, stored dtypes, label checks, the meta.

A parser reads its file twice when it must: a first pass checks everything that can be
checked without writing (names, headers, labels, row counts) and so learns the exact
stored size; `Plan.reserve` is called with it BEFORE any data is copied (the API checks
the tenant's quota there); the second pass copies row blocks into a StagedDataset.
Nothing is ever allocated from a size a file declares, only from rows actually read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tricks.spec import DatasetMeta, split_sizes
from tricks.spec.parts import DataSpec
from tricks.uploads import MIN_SAMPLES, UploadError, kind_of

BLOCK_BYTES = 8 * 2**20  # rows are copied in blocks of about this many bytes
KEPT_X = {"uint8", "int8", "uint16", "int16", "float16", "float32"}
DEFAULT_VAL_FRACTION = float(DataSpec.model_fields["val_fraction"].default)


@dataclass(frozen=True)
class IngestLimits:
    max_classes: int = 1000
    # Arrays (or image files) may declare at most this many bytes in all: a zip/tar bomb
    # is refused by its declared sizes before anything is inflated.
    max_inflated_bytes: int = 8 * 2**30
    # One image, from its header, before decoding: 2048 x 2048 (12 MiB as RGB) keeps the
    # decode and its conversions inside the API's memory budget.
    max_image_pixels: int = 2048 * 2048
    max_total_pixels: int = 4 * 2**30  # all images of an archive together
    max_images: int = 2_000_000
    max_row_group_bytes: int = 32 * 2**20  # .parquet row groups are read whole


@dataclass
class Plan:
    """What a parser is given: where to write, the limits, and the quota hook."""

    limits: IngestLimits = field(default_factory=IngestLimits)
    reserve: Callable[[int], None] = lambda stored_bytes: None
    image_size: tuple[int, int] | None = None


def stored_x_dtype(dtype: np.dtype, key: str = "x") -> np.dtype:
    """The dtype x is stored in: small native types kept, float64 and wide ints as float32."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise UploadError(
            f"'{key}' is an object (pickled) array; save plain numeric arrays "
            f"(e.g. x.astype(np.float32)) - pickles are never loaded",
            key,
        )
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise UploadError(f"'{key}' has dtype {dtype}; it must be numeric (int or float)", key)
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.name in KEPT_X:
        return dtype.newbyteorder("=")
    return np.dtype(np.float32)


def label_dtype(num_classes: int) -> np.dtype:
    """The smallest integer type that holds every label."""
    if num_classes <= 256:
        return np.dtype(np.uint8)
    if num_classes <= 32768:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def check_x_block(block: np.ndarray, stored: np.dtype, key: str, first_row: int) -> np.ndarray:
    """The block cast to its stored dtype; 422 at the first NaN/inf (or float32 overflow)."""
    with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
        out = block.astype(stored, copy=False)
    if out.dtype.kind == "f":
        bad = ~np.isfinite(out)
        if bad.any():
            where = np.argwhere(bad)[0]
            where[0] += first_row
            raise UploadError(
                f"'{key}' has a NaN or infinite value (or one too large for {stored}) at index "
                f"{tuple(int(i) for i in where)}",
                key,
            )
    return out


class LabelStats:
    """Checks label blocks as they stream and counts them per class."""

    def __init__(self, key: str, max_classes: int) -> None:
        self.key = key
        self.max_classes = max_classes
        self.counts = np.zeros(0, dtype=np.int64)
        self.n = 0

    def add(self, y: np.ndarray) -> np.ndarray:
        key = self.key
        if y.dtype.kind not in "biuf":
            raise UploadError(f"'{key}' has dtype {y.dtype}; labels must be integers", key)
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)):
                raise UploadError(f"'{key}' contains NaN or infinite labels", key)
            if not np.all(y == np.round(y)):
                bad = y[y != np.round(y)][0]
                raise UploadError(
                    f"'{key}' has non-integer label {bad:g}; labels must be class indices 0..K-1",
                    key,
                )
        if len(y) and (y.min() < 0 or y.max() >= self.max_classes):
            raise UploadError(
                f"'{key}' has labels from {y.min():g} to {y.max():g}; they must be in "
                f"0..{self.max_classes - 1}",
                key,
            )
        labels = y.astype(np.int64)
        c = np.bincount(labels, minlength=len(self.counts))
        c[: len(self.counts)] += self.counts
        self.counts = c
        self.n += len(y)
        return labels


def check_classes(train: np.ndarray, val: np.ndarray | None) -> list[int]:
    """Every class 0..K-1 present in the training labels, K >= 2; per-class counts (train+val)."""
    k = max(len(train), len(val) if val is not None else 0)
    present = np.zeros(k, dtype=np.int64)
    present[: len(train)] = train
    if np.count_nonzero(present) < 2:
        only = int(np.flatnonzero(present)[0]) if present.any() else 0
        raise UploadError(f"y has a single class ({only}); at least 2 classes are needed", "y")
    missing = np.flatnonzero(present == 0)
    if len(missing):
        raise UploadError(
            f"labels must be 0..{k - 1} with every class in y; class {int(missing[0])} has no "
            f"training samples (relabel the classes to consecutive integers)",
            "y",
        )
    if val is not None:
        present[: len(val)] += val
    return [int(c) for c in present]


def check_counts(n_x: int, n_y: int, key_x: str = "x", key_y: str = "y") -> None:
    if n_x != n_y:
        raise UploadError(
            f"{key_x} has {n_x} samples but {key_y} has {n_y}; they must match", key_y
        )


def check_min_samples(n: int) -> None:
    if n < MIN_SAMPLES:
        raise UploadError(f"only {n} samples; at least {MIN_SAMPLES} are needed", "x")


def check_sample_shape(shape: tuple[int, ...], key: str = "x") -> None:
    kind_of(len(shape))
    if min(shape[1:]) < 1:
        raise UploadError(f"{key} has an empty dimension: shape {list(shape)}", key)


def rows_per_block(row_bytes: int) -> int:
    return max(1, BLOCK_BYTES // max(1, row_bytes))


def make_meta(
    dataset_id: str,
    filename: str,
    *,
    sample_shape: tuple[int, ...],
    dtype: np.dtype,
    class_counts: list[int],
    n: int,
    n_val: int | None,
    stored_bytes: int,
    classes: list[str] | None = None,
) -> DatasetMeta:
    """The meta of a parsed dataset; without its own split n_train/n_val show the split a
    job with the default val_fraction gets (a job applies its own, see own_val)."""
    if n_val is None:
        n_train, shown_val = split_sizes(n, DEFAULT_VAL_FRACTION)
    else:
        n_train, shown_val = n, n_val
    return DatasetMeta(
        id=dataset_id,
        name=filename,
        kind=kind_of(len(sample_shape) + 1),
        input_shape=list(sample_shape),
        num_classes=len(class_counts),
        n_train=n_train,
        n_val=shown_val,
        builtin=False,
        dtype=np.dtype(dtype).name,
        stored_bytes=stored_bytes,
        class_counts=class_counts,
        classes=list(classes or []),
        own_val=n_val is not None,
    )
