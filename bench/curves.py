"""Bench: 1,000,000 points of one metric in Redis; downsampled vs full curve reads.

Run: .venv/bin/python bench/curves.py [--points N] [--reads R]
Starts a private redis-server on a free port (no persistence) and stops it after.
"""

import argparse
import socket
import subprocess
import time

import numpy as np
import redis

from tricklab.server.series import SeriesWriter, read_series


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn, reads: int) -> np.ndarray:
    out = []
    for _ in range(reads):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return np.array(out) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000, help="points per worker log flush")
    ap.add_argument("--reads", type=int, default=50)
    ap.add_argument("--max-points", type=int, default=1000)
    args = ap.parse_args()

    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        r = redis.Redis(port=port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        base = r.info("memory")["used_memory"]
        prefix = "job:bench:s"
        rng = np.random.default_rng(0)
        steps = np.arange(args.points)
        values = np.exp(-steps / 2e5) + 0.05 * rng.standard_normal(args.points)

        w = SeriesWriter(r, prefix)
        w.load()
        t = time.perf_counter()
        for i in range(0, args.points, args.batch):
            pipe = r.pipeline(transaction=False)
            w.add(pipe, "train_loss", steps[i : i + args.batch], values[i : i + args.batch])
            pipe.execute()
        write_s = time.perf_counter() - t

        keys = r.keys(f"{prefix}*")
        key_bytes = sum(r.memory_usage(k, samples=0) for k in keys)
        used = r.info("memory")["used_memory"] - base

        def down():
            return read_series(r, prefix, ["train_loss"], None, args.max_points)

        got = down()["series"]["train_loss"]
        ds = timed(down, args.reads)
        poll = timed(
            lambda: read_series(r, prefix, None, args.points - 50, args.max_points), args.reads
        )
        mid = timed(
            lambda: read_series(r, prefix, None, args.points // 2, args.max_points), args.reads
        )
        full = timed(lambda: read_series(r, prefix, ["train_loss"], None, None), 5)

        n = args.points
        print(f"points                 {n:,} (batches of {args.batch}, pipelined)")
        print(f"write                  {write_s:.2f} s  ({n / write_s / 1e6:.2f} M points/s)")
        print(f"memory (MEMORY USAGE)  {key_bytes / n:.2f} bytes/point over {len(keys)} keys")
        print(f"memory (used_memory)   {used / n:.2f} bytes/point")
        print(f"max_points={args.max_points}        returned {len(got['step'])} points")
        for label, xs in [
            ("downsampled, all", ds),
            ("downsampled, since=mid", mid),
            ("poll, since=last-50", poll),
            ("full read (no max)", full),
        ]:
            print(
                f"{label:23s}p50 {np.percentile(xs, 50):8.2f} ms   p99 {np.percentile(xs, 99):8.2f} ms"
            )
        print(f"full / downsampled p50 {np.percentile(full, 50) / np.percentile(ds, 50):.0f}x")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
