"""Ingest speed of a generated CSV (or parquet): cells per second of tricks.ingest, in process.

Writes a --rows x --cols float CSV (random normal features, 10 classes in a `label`
column, 17 significant digits, %.17g) or the same table as
.parquet, then times `ingest_file` (both passes: check, then write the stored .npy
files) into a temporary datasets dir, --repeat times, and prints the best time and
cells/s (rows x (cols + 1) cells: the label is parsed too), then one JSON line.

    python bench/ingest_speed.py [--rows 200000] [--cols 32] [--format csv|parquet]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tricks.ingest.pipeline import ingest_file  # noqa: E402


def write_csv(path: Path, rows: int, cols: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        fh.write(",".join([f"f{i}" for i in range(cols)] + ["label"]) + "\n")
        for start in range(0, rows, 10_000):
            k = min(10_000, rows - start)
            x = rng.normal(size=(k, cols))
            y = (np.arange(start, start + k) % 10).reshape(-1, 1)
            np.savetxt(fh, np.hstack([x, y]), delimiter=",", fmt=["%.17g"] * cols + ["%d"])


def write_parquet(path: Path, rows: int, cols: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    table = {f"f{i}": rng.normal(size=rows) for i in range(cols)}
    table["label"] = np.arange(rows) % 10
    pq.write_table(pa.table(table), path, row_group_size=50_000)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--cols", type=int, default=32)
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingest-speed-") as tmp:
        src = Path(tmp) / f"table.{a.format}"
        t0 = time.monotonic()
        (write_csv if a.format == "csv" else write_parquet)(src, a.rows, a.cols)
        size = src.stat().st_size
        print(f"generated {size / 2**20:.1f} MiB {src.name} ({a.rows} x {a.cols} + label) "
              f"in {time.monotonic() - t0:.1f} s")  # fmt: skip
        best = float("inf")
        for i in range(a.repeat):
            t0 = time.perf_counter()
            meta = ingest_file(src, src.name, datasets_dir=Path(tmp) / "ds", dataset_id=f"d{i}")
            best = min(best, time.perf_counter() - t0)
        assert meta.input_shape == [a.cols] and meta.n_train + meta.n_val == a.rows
    cells = a.rows * (a.cols + 1)
    print(f"ingest (2 passes + write): {best:.2f} s, {cells / best / 1e6:.2f} M cells/s, "
          f"{size / 2**20 / best:.1f} MiB/s")  # fmt: skip
    print(json.dumps({
        "bench": "ingest_speed", "format": a.format, "rows": a.rows, "cols": a.cols,
        "mib": round(size / 2**20, 1), "seconds": round(best, 3),
        "cells_per_s": round(cells / best),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
