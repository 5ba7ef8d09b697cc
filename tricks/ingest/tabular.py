"""`.csv` and `.parquet` uploads: a label column plus numeric feature columns.

Both are read twice from disk, a block of rows at a time: the first pass checks every
cell and label and counts the rows (so the stored size is exact before anything is
written), the second writes float32 features and the smallest label type.

A CSV is read by pyarrow.csv's streaming reader (in C++, about 10x Python's csv). When
it refuses anything (a text cell, a short row, bad UTF-8, a blank-looking row) or a cell
fails the checks, the first pass is run again with Python's csv module instead: it is
the reference for what is accepted and its errors name the line and column, so the
fast reader changes the speed, never which files are accepted or what the error says.
"""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np

from tricks.ingest.common import (
    LabelStats,
    Plan,
    check_classes,
    check_min_samples,
    check_x_block,
    label_dtype,
    make_meta,
    rows_per_block,
)
from tricks.ingest.stored import StagedDataset, npy_bytes
from tricks.spec import DatasetMeta
from tricks.uploads import LABEL_COLUMNS, UploadError, _csv_problem

F32 = np.dtype(np.float32)


def label_index(header: list[str], what: str) -> int:
    lowered = [h.strip().lower() for h in header]
    col = next((lowered.index(c) for c in LABEL_COLUMNS if c in lowered), None)
    if col is None:
        raise UploadError(
            f"the {what} has no label column; name one of {', '.join(LABEL_COLUMNS)} "
            f"(columns: {header[:10]})",
            "label",
        )
    if len(header) < 2:
        raise UploadError(f"the {what} has a label column but no feature columns", "x")
    return col


def _write(
    st: StagedDataset,
    plan: Plan,
    n: int,
    f: int,
    stats: LabelStats,
    blocks: Iterator[tuple[np.ndarray, np.ndarray]],
) -> tuple[list[int], np.dtype, int]:
    """Reserve the exact stored size, then write the blocks of the second pass."""
    check_min_samples(n)
    counts = check_classes(stats.counts, None)
    y_dtype = label_dtype(len(counts))
    total = npy_bytes(F32, (n, f)) + npy_bytes(y_dtype, (n,))
    plan.reserve(total)
    wx, wy = st.array("x", F32, (n, f)), st.array("y", y_dtype, (n,))
    for x, y in blocks:
        wx.write(x)
        wy.write(y.astype(y_dtype))
    wx.close()
    wy.close()
    return counts, y_dtype, total


# ---------------------------------------------------------------------------- csv

ARROW_BLOCK = 2**20  # bytes of CSV text per pyarrow batch (4 MiB grew the RSS with the file)


class _Slow(Exception):
    """The fast reader met something: let Python's csv module read the file and say what."""


def _arrow_blocks(path: Path, label_col: int, width: int, first_pass: bool):
    """(x float32, y float64) blocks, as _csv_blocks gives them, parsed by pyarrow.csv.

    Every column is read as float64 with no null values (an empty cell is an error, as
    for float()). In the first pass anything pyarrow refuses, or a cell the checks
    refuse, raises _Slow; in the second the file was already checked whole. One core
    (use_threads=False): the heavy pool's thread count is what bounds an ingest's CPU."""
    import pyarrow as pa
    import pyarrow.csv as pc

    names = [f"c{i}" for i in range(width)]
    read = pc.ReadOptions(
        column_names=names, skip_rows=1, block_size=ARROW_BLOCK, use_threads=False
    )
    convert = pc.ConvertOptions(
        column_types={n: pa.float64() for n in names},
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    features = [i for i in range(width) if i != label_col]
    first = 0
    try:
        # a Python file object: given a path (or a pa.OSFile) pyarrow reads the whole
        # file into memory first; from a stream it holds about one block at a time
        with open(path, "rb") as fh:
            for batch in pc.open_csv(fh, read_options=read, convert_options=convert):
                cols = [batch.column(i) for i in range(width)]
                if any(c.null_count for c in cols):
                    raise _Slow
                x = np.empty((batch.num_rows, len(features)), dtype=np.float64)
                for j, i in enumerate(features):
                    x[:, j] = cols[i].to_numpy()
                yield check_x_block(x, F32, "x", first), cols[label_col].to_numpy()
                first += batch.num_rows
    except (pa.ArrowException, UploadError) as e:
        if first_pass:
            raise _Slow from e
        raise UploadError(f"the CSV changed while it was read: {e}") from None


def _csv_rows(path: Path) -> Generator[tuple[int, list[str]], None, None]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            for line, row in enumerate(csv.reader(fh), start=1):
                if line > 1 and (not row or all(not c.strip() for c in row)):
                    continue  # blank line
                yield line, row
    except UnicodeDecodeError as e:
        raise UploadError(f"the CSV is not UTF-8 text: {e}") from None
    except csv.Error as e:
        raise UploadError(f"the CSV is malformed: {_csv_problem(e)}") from None


def _csv_blocks(path: Path, label_col: int, header: list[str], step: int):
    """(x float32, y float64) blocks of parsed, checked rows."""
    width = len(header)
    buf: list[list[str]] = []
    lines: list[int] = []
    first = 0
    rows = _csv_rows(path)
    next(rows)  # the header
    for line, row in rows:
        if len(row) != width:
            raise UploadError(f"CSV line {line} has {len(row)} fields, the header has {width}")
        buf.append(row)
        lines.append(line)
        if len(buf) == step:
            yield _split(_parse(buf, lines, header), label_col, first)
            first += len(buf)
            buf, lines = [], []
    if buf:
        yield _split(_parse(buf, lines, header), label_col, first)


def _parse(rows: list[list[str]], lines: list[int], header: list[str]) -> np.ndarray:
    """float64 cells (float() on each, in C); the first bad cell named when one fails."""
    try:
        return np.array(rows, dtype=object).astype(np.float64)
    except (ValueError, TypeError):
        pass
    for line, row in zip(lines, rows, strict=True):
        for col, cell in enumerate(row):
            try:
                float(cell)
            except ValueError:
                raise UploadError(
                    f"column '{header[col]}', line {line} (data row {line - 1}): '{cell[:40]}' is "
                    "not a number; all columns but the label must be numeric",
                    header[col],
                ) from None
    raise UploadError("the CSV has cells that are not numbers")


def _split(table: np.ndarray, label_col: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    x = check_x_block(np.delete(table, label_col, axis=1), F32, "x", first)
    return x, table[:, label_col]


def read_csv(
    path: Path, filename: str, dataset_id: str, st: StagedDataset, plan: Plan
) -> DatasetMeta:
    rows = _csv_rows(path)
    try:
        _, header = next(rows)
    except StopIteration:
        raise UploadError("the CSV is empty; it needs a header row and data rows") from None
    rows.close()
    header = [h.strip() for h in header]
    label_col = label_index(header, "CSV")
    f = len(header) - 1
    step = rows_per_block(8 * 8 * len(header))  # a parsed row costs ~8x its float64 bytes
    stats = LabelStats("y", plan.limits.max_classes)
    try:
        for _, y in _arrow_blocks(path, label_col, len(header), True):  # pass 1: check, count
            stats.add(y)
        blocks = _arrow_blocks(path, label_col, len(header), False)
    except _Slow:
        stats = LabelStats("y", plan.limits.max_classes)
        for _, y in _csv_blocks(path, label_col, header, step):  # raises what is wrong
            stats.add(y)
        blocks = _csv_blocks(path, label_col, header, step)
    if stats.n == 0:
        raise UploadError("the CSV has a header but no data rows")
    counts, _, total = _write(st, plan, stats.n, f, stats, blocks)
    return make_meta(
        dataset_id, filename, sample_shape=(f,), dtype=F32, class_counts=counts,
        n=stats.n, n_val=None, stored_bytes=total,
    )  # fmt: skip


# ------------------------------------------------------------------------ parquet


def _parquet(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path, pre_buffer=False)  # pre_buffer reads every row group at once
    except (pa.ArrowException, OSError, ValueError) as e:
        raise UploadError(f"not a readable .parquet file: {e}") from None
    return pa, pf


def _parquet_blocks(pf, pa, names: list[str], label: str, step: int):
    features = [c for c in names if c != label]
    first = 0
    try:
        # one thread: pyarrow's own pool held ~3x the memory and the heavy pool bounds the CPU
        for batch in pf.iter_batches(batch_size=step, columns=names, use_threads=False):
            cols = {}
            for name in names:
                col = batch.column(name)
                if col.null_count:
                    raise UploadError(f"column '{name}' has empty (null) cells", name)
                cols[name] = col.to_numpy(zero_copy_only=False)
            x = np.stack([cols[c].astype(np.float64, copy=False) for c in features], axis=1)
            yield check_x_block(x, F32, "x", first), cols[label]
            first += batch.num_rows
    except UploadError:
        raise
    except (pa.ArrowException, OSError, ValueError) as e:
        raise UploadError(f"the .parquet file is truncated or corrupt: {e}") from None


def _check_row_groups(pf, limit: int) -> None:
    """pyarrow reads a row group whole: refuse one that would not fit the memory budget."""
    for i in range(pf.metadata.num_row_groups):
        rg = pf.metadata.row_group(i)
        if rg.total_byte_size > limit:
            raise UploadError(
                f"row group {i} of the .parquet file is {rg.total_byte_size} bytes uncompressed, "
                f"above the {limit} byte limit; write it with smaller row groups "
                "(pyarrow.parquet.write_table(..., row_group_size=100_000))"
            )


def read_parquet(
    path: Path, filename: str, dataset_id: str, st: StagedDataset, plan: Plan
) -> DatasetMeta:
    pa, pf = _parquet(path)
    schema = pf.schema_arrow
    names = list(schema.names)
    label = names[label_index(names, ".parquet file")]
    for fld in schema:
        t = fld.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise UploadError(
                f"column '{fld.name}' has type {t}; every column must be numeric (int, float or bool)",
                fld.name,
            )
    _check_row_groups(pf, plan.limits.max_row_group_bytes)
    f = len(names) - 1
    step = rows_per_block(8 * len(names))
    stats = LabelStats("y", plan.limits.max_classes)
    for _, y in _parquet_blocks(pf, pa, names, label, step):  # pass 1: check and count
        stats.add(y)
    if stats.n != pf.metadata.num_rows:
        raise UploadError(
            f"the .parquet footer declares {pf.metadata.num_rows} rows but {stats.n} were read"
        )
    counts, _, total = _write(
        st, plan, stats.n, f, stats, _parquet_blocks(pf, pa, names, label, step)
    )
    return make_meta(
        dataset_id, filename, sample_shape=(f,), dtype=F32, class_counts=counts,
        n=stats.n, n_val=None, stored_bytes=total,
    )  # fmt: skip
