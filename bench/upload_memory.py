"""API memory during a big dataset upload: resident-set growth and stored vs native bytes.

Writes a file of about --size-mib MiB to disk, a block at a time, in one --format:
  npz      uint8 images N x 3 x 32 x 32, random pixels, stored uncompressed (the default)
  csv      32 random normal float columns (%.17g) and a label column
  parquet  the same table, float64, row groups of 20,000 rows
  zip      one folder per class of 32 x 32 RGB PNGs of random pixels (deflated)
starts a private redis-server and the API under uvicorn (tests/support/processes.py),
warms the API up with a tiny upload of the same format, then POSTs the big file to
/datasets streamed from the file object (httpx multipart reads it in chunks) while a
thread samples VmRSS of the API process from /proc/<pid>/status every 10 ms. Prints the
baseline RSS, the peak growth (target <= 64 MiB whatever the size) and stored bytes /
native array bytes (target <= 1.05), then one JSON line.

    python bench/upload_memory.py [--size-mib 1024] [--format npz|csv|parquet|zip]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from support.processes import RedisServer, free_port, service_env, start_api  # noqa: E402
from support.waiting import wait_for  # noqa: E402

IMAGE = (3, 32, 32)
GROWTH_TARGET_MIB = 64
RATIO_TARGET = 1.05


def write_npz(path: Path, n: int, seed: int = 0) -> int:
    """x (n, 3, 32, 32) uint8 and y (n,) uint8 as an uncompressed .npz; native bytes."""
    rng = np.random.default_rng(seed)
    header = {"descr": "|u1", "fortran_order": False, "shape": (n, *IMAGE)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            for start in range(0, n, 8192):
                rows = min(8192, n - start)
                f.write(rng.integers(0, 256, size=(rows, *IMAGE), dtype=np.uint8).data)
        with zf.open("y.npy", "w") as f:
            np.save(f, (np.arange(n) % 10).astype(np.uint8))
    return n * int(np.prod(IMAGE)) + n


COLS = 32  # feature columns of the csv and parquet tables


def write_csv(path: Path, size: int, seed: int = 0) -> tuple[int, int]:
    """Rows of 32 random normal floats and a label until the file holds `size` bytes."""
    rng = np.random.default_rng(seed)
    n = 0
    with open(path, "w") as fh:
        fh.write(",".join([f"f{i}" for i in range(COLS)] + ["label"]) + "\n")
        while n < 20 or fh.tell() < size:
            x = rng.normal(size=(5000, COLS))
            y = (np.arange(n, n + 5000) % 10).reshape(-1, 1)
            np.savetxt(fh, np.hstack([x, y]), delimiter=",", fmt=["%.17g"] * COLS + ["%d"])
            n += 5000
    return n, n * COLS * 4 + n


def write_parquet(path: Path, size: int, seed: int = 0) -> tuple[int, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    rows = 20_000
    n = 0
    schema = pa.schema([(f"f{i}", pa.float64()) for i in range(COLS)] + [("label", pa.int64())])
    with pq.ParquetWriter(path, schema) as w:
        while n == 0 or path.stat().st_size < size:
            cols = [rng.normal(size=rows) for _ in range(COLS)] + [np.arange(n, n + rows) % 10]
            w.write_table(pa.Table.from_arrays(cols, schema=schema))
            n += rows
    return n, n * COLS * 4 + n


def write_zip(path: Path, size: int, seed: int = 0) -> tuple[int, int]:
    """class<k>/<i>.png, 32 x 32 RGB random pixels, until the archive holds `size` bytes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    n = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        while n < 20 or zf.fp.tell() < size:  # type: ignore[union-attr]
            buf = io.BytesIO()
            img = rng.integers(0, 256, (IMAGE[1], IMAGE[2], 3), dtype=np.uint8)
            Image.fromarray(img).save(buf, format="PNG", compress_level=1)
            zf.writestr(f"class{n % 10}/{n:07d}.png", buf.getvalue())
            n += 1
    return n, n * int(np.prod(IMAGE)) + n


def npz_writer(path: Path, size: int, seed: int = 0) -> tuple[int, int]:
    n = max(20, int(size // (int(np.prod(IMAGE)) + 1)))
    return n, write_npz(path, n, seed)


WRITERS: dict[str, Callable[[Path, int, int], tuple[int, int]]] = {
    "npz": npz_writer, "csv": write_csv, "parquet": write_parquet, "zip": write_zip,
}  # fmt: skip
WARM_BYTES = {"npz": 0, "csv": 2**16, "parquet": 2**16, "zip": 2**16}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, rss_kib(pid), threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mib", type=float, default=1024.0, help="size of the file to upload")
    p.add_argument("--format", choices=sorted(WRITERS), default="npz")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="upload-memory-") as tmp:
        tmpd = Path(tmp)
        src = tmpd / f"data.{a.format}"
        t0 = time.monotonic()
        n, native = WRITERS[a.format](src, int(a.size_mib * 2**20), 0)
        print(
            f"generated {src.stat().st_size / 2**20:.1f} MiB {src.name} ({n} samples) "
            f"in {time.monotonic() - t0:.1f} s"
        )
        redis = RedisServer(port=free_port(), dir=tmpd / "redis", aof=False)
        (tmpd / "redis").mkdir()
        redis.start()
        env = service_env(
            f"redis://127.0.0.1:{redis.port}/0",
            tmpd / "artifacts",
            TRICKLAB_MAX_UPLOAD_BYTES=str(src.stat().st_size + 2**20),
            TRICKLAB_MAX_DATASET_BYTES_TOTAL=str(4 * src.stat().st_size + 2**30),
        )
        port = free_port()
        api = start_api(env, tmpd / "api.log", port)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(
                lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60, what="API"
            )
            assert api.proc is not None
            return run(url, api.proc.pid, src, native, n, a.format)
        finally:
            api.stop()
            redis.stop()


def run(url: str, pid: int, src: Path, native: int, n: int, fmt: str) -> int:
    with httpx.Client(base_url=url, timeout=3600) as c:
        warm = tempfile.NamedTemporaryFile(suffix=f".{fmt}")  # noqa: SIM115
        WRITERS[fmt](Path(warm.name), WARM_BYTES[fmt], 1)
        with open(warm.name, "rb") as fh:  # imports and first-use allocations, not counted
            c.post("/datasets", files={"file": (f"warm.{fmt}", fh)}).raise_for_status()
        time.sleep(0.5)
        baseline = rss_kib(pid)
        sampler = Sampler(pid)
        sampler.start()
        t0 = time.monotonic()
        with open(src, "rb") as fh:
            r = c.post("/datasets", files={"file": (src.name, fh, "application/octet-stream")})
        elapsed = time.monotonic() - t0
        sampler.stop.set()
        sampler.join()
    if r.status_code != 201:
        print(f"upload failed: {r.status_code} {r.text[:500]}")
        return 1
    ds = r.json()
    growth = (sampler.peak - baseline) / 1024
    ratio = ds["stored_bytes"] / native
    print(f"API baseline RSS:      {baseline / 1024:.1f} MiB")
    print(f"API peak RSS growth:   {growth:.1f} MiB (target <= {GROWTH_TARGET_MIB})")
    print(
        f"stored / native bytes: {ratio:.4f} ({ds['stored_bytes']} / {native}; target <= {RATIO_TARGET})"
    )
    print(
        f"upload + ingest:       {elapsed:.1f} s ({src.stat().st_size / 2**20 / elapsed:.0f} MiB/s)"
    )
    print(json.dumps({
        "bench": "upload_memory", "format": fmt, "n": n,
        "size_mib": round(src.stat().st_size / 2**20, 1),
        "baseline_rss_mib": round(baseline / 1024, 1), "peak_growth_mib": round(growth, 1),
        "stored_over_native": round(ratio, 4), "seconds": round(elapsed, 2),
        "dtype": ds["dtype"], "shape": [n, *ds["input_shape"]],
    }))  # fmt: skip
    return 0 if growth <= GROWTH_TARGET_MIB and ratio <= RATIO_TARGET else 2


if __name__ == "__main__":
    sys.exit(main())
