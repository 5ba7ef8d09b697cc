"""Parse and validate an uploaded dataset (.npz or .csv) before anything trusts it.

numpy only: the API imports this module and must stay torch-free.

The API ingests uploads with tricks.ingest (streamed from disk, bounded memory, every
format, native dtypes); this module is where the names other code imports live:
`open_stored` / `stored_bytes` (the stored layout, tricks.ingest.stored), `UploadError`,
`kind_of`, and `read_upload`, the in-memory parser of a small .npz/.csv (float32 x,
int64 y) that tools and tests use on bytes they already hold.

An upload is hostile until proven otherwise. For .npz the zip directory is read
first: only x.npy, y.npy, x_val.npy, y_val.npy may be present, each once, and their
declared uncompressed sizes must sum below a limit (a zip bomb is refused before
anything is inflated; zipfile never inflates a member past its declared size).
Each member's .npy header is read before its data, so object dtypes (pickles)
are refused by dtype and never unpickled; arrays are then read with
allow_pickle=False. Every problem raises UploadError naming the field.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from typing import IO, Literal

import numpy as np

from tricks.ingest.stored import open_stored, remove_stored, stored_bytes  # noqa: F401
from tricks.spec import DatasetMeta

MIN_SAMPLES = 10
MAX_UNCOMPRESSED = 512 * 2**20
MEMBERS = ("x", "y", "x_val", "y_val")
LABEL_COLUMNS = ("label", "y", "target", "class")
KINDS: dict[int, Literal["tabular", "sequence", "image"]] = {
    2: "tabular",
    3: "sequence",
    4: "image",
}


class UploadError(ValueError):
    """An upload we refuse; `field` names the array, column or "file" at fault."""

    def __init__(self, message: str, field: str = "file") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def kind_of(x_ndim: int) -> Literal["tabular", "sequence", "image"]:
    """tabular (N,F), sequence (N,C,L) or image (N,C,H,W), by the rank of x."""
    if x_ndim not in KINDS:
        raise UploadError(
            f"x has {x_ndim} dimensions; expected (N,F) tabular, (N,C,L) sequences or (N,C,H,W) images",
            "x",
        )
    return KINDS[x_ndim]


def read_upload(
    data: bytes,
    filename: str,
    *,
    dataset_id: str,
    max_classes: int = 1000,
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED,
) -> tuple[dict[str, np.ndarray], DatasetMeta]:
    """Parse, validate and normalize an upload: float32 x, int64 y, plus its DatasetMeta."""
    name = filename.lower()
    if name.endswith(".npz"):
        arrays = _read_npz(data, max_uncompressed_bytes)
    elif name.endswith(".csv"):
        if len(data) > max_uncompressed_bytes:
            raise UploadError(
                f"the CSV is {len(data)} bytes, above the {max_uncompressed_bytes} byte limit"
            )
        arrays = _read_csv(data)
    else:
        raise UploadError(f"'{filename}' is neither .npz nor .csv; upload one of those")
    arrays = validate_arrays(arrays, max_classes=max_classes)
    x, y = arrays["x"], arrays["y"]
    labels = np.concatenate([y, arrays.get("y_val", y[:0])])
    meta = DatasetMeta(
        id=dataset_id,
        name=filename,
        kind=kind_of(x.ndim),
        input_shape=list(x.shape[1:]),
        num_classes=int(labels.max()) + 1,
        n_train=len(y),
        n_val=len(arrays["y_val"]) if "y_val" in arrays else 0,
        builtin=False,
    )
    return arrays, meta


# ---------------------------------------------------------------------------- npz


def _read_npz(data: bytes, limit: int) -> dict[str, np.ndarray]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise UploadError(f"not a readable .npz (zip) archive: {e}") from None
    with zf:
        infos = zf.infolist()
        allowed = {f"{m}.npy" for m in MEMBERS}
        seen: set[str] = set()
        for info in infos:
            if info.filename not in allowed:
                raise UploadError(
                    f"unexpected member '{info.filename}' in the .npz; only x, y, x_val, y_val are allowed",
                    info.filename,
                )
            key = info.filename[: -len(".npy")]
            if key in seen:  # a zip may repeat a name; reading "the last one" would be a guess
                raise UploadError(
                    f"the .npz holds '{info.filename}' more than once; each of x, y, x_val, "
                    "y_val may appear at most once",
                    key,
                )
            seen.add(key)
        total = sum(info.file_size for info in infos)
        if total > limit:
            raise UploadError(
                f"the .npz inflates to {total} bytes, above the {limit} byte limit "
                f"(compressed {len(data)} bytes)"
            )
        arrays = {}
        for info in infos:
            key = info.filename[: -len(".npy")]
            try:
                with zf.open(info) as f:
                    arrays[key] = _read_npy(f, key)
            except UploadError:
                raise
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as e:
                raise UploadError(f"'{key}' is truncated or corrupt: {e}", key) from None
    return arrays


def _read_npy(f: IO[bytes], key: str) -> np.ndarray:
    """Check the .npy header's dtype before reading the data; never unpickle."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise UploadError(f"'{key}' uses .npy format {version}, which is not supported", key)
    if dtype.hasobject:
        raise UploadError(
            f"'{key}' is an object (pickled) array; save plain numeric arrays "
            f"(e.g. x.astype(np.float32)) - pickles are never loaded",
            key,
        )
    if dtype.kind not in "biuf":
        raise UploadError(f"'{key}' has dtype {dtype}; it must be numeric (int or float)", key)
    raw = f.read()  # bounded by the member's declared size, checked against the limit
    count = int(np.prod(shape)) if shape else 1
    if len(raw) != count * dtype.itemsize:
        raise UploadError(
            f"'{key}' is truncated or corrupt: its header says shape {list(shape)} of {dtype}, "
            f"but the data has {len(raw)} bytes",
            key,
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")


# ---------------------------------------------------------------------------- csv


def _read_csv(data: bytes) -> dict[str, np.ndarray]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UploadError(f"the CSV is not UTF-8 text: {e}") from None
    rows = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(rows)]
    except StopIteration:
        raise UploadError("the CSV is empty; it needs a header row and data rows") from None
    except csv.Error as e:  # e.g. a header field past csv.field_size_limit() (131072)
        raise UploadError(f"the CSV header is malformed: {_csv_problem(e)}") from None
    lowered = [h.lower() for h in header]
    label_col = next((lowered.index(c) for c in LABEL_COLUMNS if c in lowered), None)
    if label_col is None:
        raise UploadError(
            f"the CSV has no label column; name one of {', '.join(LABEL_COLUMNS)} (header: {header[:10]})",
            "label",
        )
    if len(header) < 2:
        raise UploadError("the CSV has a label column but no feature columns", "x")
    values: list[list[float]] = []
    try:
        for line, row in enumerate(rows, start=2):
            if not row or all(not c.strip() for c in row):
                continue  # blank line
            if len(row) != len(header):
                raise UploadError(
                    f"CSV line {line} has {len(row)} fields, the header has {len(header)}", "file"
                )
            parsed = []
            for col, cell in enumerate(row):
                try:
                    parsed.append(float(cell))
                except ValueError:
                    raise UploadError(
                        f"column '{header[col]}', line {line} (data row {line - 1}): '{cell[:40]}' is not a number; "
                        f"all columns but the label must be numeric",
                        header[col],
                    ) from None
            values.append(parsed)
    except csv.Error as e:
        raise UploadError(f"the CSV is malformed: {_csv_problem(e)}") from None
    if not values:
        raise UploadError("the CSV has a header but no data rows")
    table = np.asarray(values, dtype=np.float64)
    return {"x": np.delete(table, label_col, axis=1), "y": table[:, label_col]}


def _csv_problem(e: csv.Error) -> str:
    """csv's message, with what to do about the one a caller can hit by accident."""
    msg = str(e)
    if "field larger than field limit" in msg:
        return (
            f"a field is longer than {csv.field_size_limit()} characters; numeric cells are "
            "short, so check the quoting (an unclosed quote swallows the rest of the file)"
        )
    return msg


# ----------------------------------------------------------------------- validate


def _labels(y: np.ndarray, key: str, max_classes: int) -> np.ndarray:
    if y.ndim != 1:
        raise UploadError(f"'{key}' has shape {list(y.shape)}; labels must be 1-D (N,)", key)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise UploadError(f"'{key}' contains NaN or infinite labels", key)
        if not np.all(y == np.round(y)):
            bad = y[y != np.round(y)][0]
            raise UploadError(
                f"'{key}' has non-integer label {bad:g}; labels must be class indices 0..K-1", key
            )
    if len(y) and (y.min() < 0 or y.max() >= max_classes):
        raise UploadError(
            f"'{key}' has labels from {y.min():g} to {y.max():g}; they must be in 0..{max_classes - 1}",
            key,
        )
    return y.astype(np.int64)


def _features(x: np.ndarray, key: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise UploadError(f"'{key}' has dtype {x.dtype}; it must be numeric", key)
    out = x.astype(np.float32)
    if not np.all(np.isfinite(out)):
        where = np.argwhere(~np.isfinite(out))[0]
        raise UploadError(
            f"'{key}' has a NaN or infinite value (or one too large for float32) at index "
            f"{tuple(int(i) for i in where)}",
            key,
        )
    return out


def validate_arrays(
    arrays: dict[str, np.ndarray], *, max_classes: int = 1000
) -> dict[str, np.ndarray]:
    """Check shapes, dtypes, finiteness and labels; return float32 x and int64 y arrays."""
    for key in ("x", "y"):
        if key not in arrays:
            raise UploadError(f"the upload has no '{key}' array; it needs x and y", key)
    if ("x_val" in arrays) != ("y_val" in arrays):
        missing = "y_val" if "x_val" in arrays else "x_val"
        raise UploadError(f"x_val and y_val come together; '{missing}' is missing", missing)
    x = _features(arrays["x"], "x")
    kind_of(x.ndim)
    if min(x.shape[1:]) < 1:
        raise UploadError(f"x has an empty dimension: shape {list(x.shape)}", "x")
    y = _labels(arrays["y"], "y", max_classes)
    if len(x) != len(y):
        raise UploadError(f"x has {len(x)} samples but y has {len(y)}; they must match", "y")
    if len(y) < MIN_SAMPLES:
        raise UploadError(f"only {len(y)} samples; at least {MIN_SAMPLES} are needed", "x")
    out = {"x": x, "y": y}
    k = int(y.max()) + 1
    if "x_val" in arrays:
        xv = _features(arrays["x_val"], "x_val")
        if xv.shape[1:] != x.shape[1:] or xv.ndim != x.ndim:
            raise UploadError(
                f"x_val samples have shape {list(xv.shape[1:])}, x samples {list(x.shape[1:])}; they must match",
                "x_val",
            )
        yv = _labels(arrays["y_val"], "y_val", max_classes)
        if len(xv) != len(yv):
            raise UploadError(
                f"x_val has {len(xv)} samples but y_val has {len(yv)}; they must match", "y_val"
            )
        if len(yv) == 0:
            raise UploadError(
                "x_val/y_val are empty; leave them out to split off a validation set", "y_val"
            )
        k = max(k, int(yv.max()) + 1)
        out |= {"x_val": xv, "y_val": yv}
    present = np.bincount(y, minlength=k)
    if np.count_nonzero(present) < 2:
        raise UploadError(f"y has a single class ({int(y[0])}); at least 2 classes are needed", "y")
    missing = np.flatnonzero(present == 0)
    if len(missing):
        raise UploadError(
            f"labels must be 0..{k - 1} with every class in y; class {int(missing[0])} has no "
            f"training samples (relabel the classes to consecutive integers)",
            "y",
        )
    return out
