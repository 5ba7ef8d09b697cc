"""`tricklab upload FILE`: a resumable tus upload, then POST /datasets {"upload": id}.

The bytes go through tricklab.client.tus (chunks, resume after a drop, remembered across
runs); progress goes to stderr (a bar on a terminal, a plain line a second otherwise); the
dataset's id goes to stdout, as before. A server without /uploads gets the old multipart
POST /datasets.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

from tricklab.client.cli_util import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, UsageError, _out
from tricklab.client.errors import ApiError, ConnectionError
from tricklab.client.http import Client
from tricklab.client.tus import RetriesExhausted, TusUnsupported, TusUpload, options

MiB = 2**20


def add_upload_command(add) -> None:
    s = add("upload", cmd_upload, "upload a dataset (.npz, .csv, ...); resumes after a drop")
    s.add_argument("file")
    s.add_argument("--name")
    s.add_argument("--image-size", help="resize images to this size, e.g. 32 or 32x32")
    s.add_argument("--chunk-mib", type=float, default=8.0, help="bytes per PATCH (default 8 MiB)")
    s.add_argument(
        "--retries", type=int, default=5, help="retries of one chunk after a drop (default 5)"
    )


class Progress:
    """bytes, %, MiB/s on stderr: redrawn in place on a terminal, a line a second otherwise."""

    def __init__(self, name: str, stream=None) -> None:
        self.name = name
        self.out = stream or sys.stderr
        self.tty = self.out.isatty()
        self.t0 = time.monotonic()
        self.first: int | None = None
        self.last_line = 0.0
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if done == self.done and self.first is not None:
            return  # the server confirming the bytes just sent: nothing new to show
        self.done = done
        now = time.monotonic()
        if self.first is None:
            self.first, self.t0 = done, now
        if not self.tty and now - self.last_line < 1.0 and done < total:
            return
        self.last_line = now
        rate = (done - self.first) / MiB / max(now - self.t0, 1e-6)
        pct = 100.0 * done / total if total else 100.0
        line = f"{self.name}: {done / MiB:.1f}/{total / MiB:.1f} MiB {pct:5.1f}% {rate:6.1f} MiB/s"
        if self.tty:
            width = 24
            fill = int(width * done / total) if total else width
            self.out.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {line}")
            if done >= total:
                self.out.write("\n")
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def retry(self, why: str, wait: float, n: int) -> None:
        head = "\n" if self.tty else ""
        then = f"resuming in {wait:.1f} s (retry {n})" if n else "sending it again with a PATCH"
        self.out.write(f"{head}{self.name}: {why}; {then}\n")
        self.out.flush()


def _http(c: Client) -> httpx.Client:
    headers = {"User-Agent": "tricklab-client"}
    if c.api_key:
        headers["Authorization"] = f"Bearer {c.api_key}"
    timeout = httpx.Timeout(c.timeout, connect=10.0, write=max(c.timeout, 60.0))
    return httpx.Client(base_url=c.url, headers=headers, timeout=timeout)


def cmd_upload(c: Client, a: argparse.Namespace) -> int:
    path = Path(a.file)
    if not path.is_file():
        raise UsageError(f"no such file: {a.file}")
    if a.chunk_mib <= 0 or a.retries < 0:
        raise UsageError("--chunk-mib must be above 0 and --retries at least 0")
    with _http(c) as http:
        try:
            info = options(http)
        except TusUnsupported:
            ds = c.upload_dataset(path, name=a.name, image_size=a.image_size)
            _out(ds.get("id", ds))
            return EXIT_OK
        except httpx.TransportError as e:
            raise ConnectionError(c.url, type(e).__name__) from None
        size = path.stat().st_size
        most = int(info.get("tus-max-size") or 0)
        if most and size > most:
            raise UsageError(f"{path.name} is {size} bytes; the server takes at most {most}")
        progress = Progress(path.name)
        extensions = info.get("tus-extension", "").split(",")
        up = TusUpload(
            http,
            path,
            chunk_bytes=int(a.chunk_mib * MiB),
            retries=a.retries,
            checksum="checksum" in extensions,
            with_upload="creation-with-upload" in extensions,
            on_progress=progress,
            on_retry=progress.retry,
        )
        try:
            up.run()
        except KeyboardInterrupt:
            print(
                f"\n{path.name}: interrupted at {progress.done} bytes; run the same command "
                "again to resume",
                file=sys.stderr,
            )
            return EXIT_CANCELLED
        except RetriesExhausted as e:
            print(
                f"{path.name}: {e}; run the same command again to resume from "
                f"{progress.done} bytes",
                file=sys.stderr,
            )
            return EXIT_FAILED
        except httpx.TransportError as e:
            raise ConnectionError(c.url, type(e).__name__) from None
    if up.resumed_from:
        print(f"{path.name}: resumed from byte {up.resumed_from}", file=sys.stderr)
    try:
        ds = c.dataset_from_upload(up.upload_id, name=a.name, image_size=a.image_size)
    except ApiError as e:
        if e.status in (400, 404, 413, 422):
            # not a dataset (or gone): free the upload's quota; the next run starts over
            with _http(c) as http:
                try:
                    http.delete(up.url, headers={"Tus-Resumable": "1.0.0"})
                except httpx.TransportError:
                    pass  # it expires on its own
            up.forget()
        raise
    up.forget()
    _out(ds.get("id", ds))
    return EXIT_OK
