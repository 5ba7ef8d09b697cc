"""A tus 1.0.0 client: create an upload, PATCH it a chunk at a time, resume after a drop.

A dropped connection, a timeout, a 5xx or a 423 (the server still finishing the cut PATCH)
is retried with backoff: HEAD says how far the server got and the next PATCH starts there.
Unfinished uploads are remembered in a small JSON file keyed by the file (absolute path,
size, mtime) and the API URL (tus-js-client's fingerprint), so running the same command
again after a crash or Ctrl-C resumes instead of starting over.

Where the server has creation-with-upload, the first chunk rides on the POST that creates
the upload (one round trip less). The server drops an upload whose first chunk did not
arrive whole (no one knows its Location), so a POST that fails that way is followed by a
plain one and the ordinary PATCH loop, retries and all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from tricklab.client.errors import ApiError

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_TYPE = "application/offset+octet-stream"
PIECE = 256 * 1024  # what the body generator yields; progress moves at this grain
RETRY_STATUSES = frozenset({408, 423, 429, 500, 502, 503, 504})
LOCKED_WAIT_S = 45.0  # longer than the server's lock TTL (api/tus.py LOCK_TTL_S, 30 s)


class TusUnsupported(Exception):
    """The API has no /uploads (an older server): use the multipart POST /datasets."""


class RetriesExhausted(Exception):
    def __init__(self, tries: int, last: str) -> None:
        super().__init__(f"gave up after {tries} retries; the last failure: {last}")


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tricklab" / "uploads.json"


class Resumables:
    """fingerprint -> upload URL, in cache_path(); a damaged file is treated as empty."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()

    @staticmethod
    def fingerprint(file: Path, api_url: str) -> str:
        st = file.stat()
        return f"{file.resolve()}|{st.st_size}|{st.st_mtime_ns}|{api_url}"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> str | None:
        entry = self._read().get(key)
        return entry.get("url") if isinstance(entry, dict) else None

    def put(self, key: str, url: str | None) -> None:
        """Remember url for key (None: forget it); written through a temp file + rename."""
        data = self._read()
        if url is None:
            data.pop(key, None)
        else:
            data[key] = {"url": url, "at": time.time()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)


def options(http: httpx.Client) -> dict[str, str]:
    """OPTIONS /uploads → its headers; TusUnsupported when the server has no such route."""
    r = http.options("/uploads")
    if r.status_code in (404, 405):
        raise TusUnsupported()
    if r.status_code >= 400:
        raise ApiError.from_response(r)
    if "1.0.0" not in r.headers.get("Tus-Version", "").split(","):
        raise TusUnsupported()
    return dict(r.headers)


class TusUpload:
    """One file to one upload. run() returns the upload's URL once every byte is in."""

    def __init__(
        self,
        http: httpx.Client,
        file: Path,
        *,
        chunk_bytes: int = 8 * 2**20,
        retries: int = 5,
        backoff_s: float = 0.5,
        checksum: bool = True,
        with_upload: bool = False,
        cache: Resumables | None = None,
        on_progress: Callable[[int, int], None] = lambda done, total: None,
        on_retry: Callable[[str, float, int], None] = lambda why, wait, n: None,
    ) -> None:
        self.http = http
        self.file = file
        self.size = file.stat().st_size
        self.chunk = max(PIECE, chunk_bytes)
        self.retries = retries
        self.backoff_s = backoff_s
        self.checksum = checksum
        self.with_upload = with_upload  # the server lists creation-with-upload
        self.cache = cache or Resumables()
        self.key = Resumables.fingerprint(file, str(http.base_url))
        self.on_progress = on_progress
        self.on_retry = on_retry
        self.url = ""
        self.resumed_from: int | None = None

    @property
    def upload_id(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def run(self) -> str:
        offset = self._start()
        failures = 0
        locked_since: float | None = None
        with open(self.file, "rb") as fh:
            while offset < self.size:
                fh.seek(offset)
                data = fh.read(self.chunk)
                try:
                    offset = self._patch(offset, data)
                    failures, locked_since = 0, None
                    continue
                except _Retry as e:
                    # 423: the server still finishing the PATCH that was cut (its lock lapses
                    # within 30 s): waited for, up to LOCKED_WAIT_S, without using a retry
                    now = time.monotonic()
                    locked_since = (locked_since or now) if e.status == 423 else None
                    if locked_since is None or now - locked_since > LOCKED_WAIT_S:
                        failures += 1
                    if failures > self.retries:
                        raise RetriesExhausted(self.retries, e.why) from None
                    wait = min(self.backoff_s * 2 ** max(failures - 1, 0), 10.0)
                    self.on_retry(e.why, wait, failures)
                    time.sleep(wait)
                offset = self._head_retrying()
        return self.url

    # ----------------------------------------------------------------- steps
    def _start(self) -> int:
        """The remembered upload's offset, or a new upload's 0."""
        known = self.cache.get(self.key)
        if known:
            try:
                r = self.http.head(known, headers=TUS)
            except httpx.TransportError:
                r = None
            if r is not None and r.status_code == 200:
                if int(r.headers.get("Upload-Length", -1)) == self.size:
                    self.url = known
                    self.resumed_from = int(r.headers["Upload-Offset"])
                    self.on_progress(self.resumed_from, self.size)
                    return self.resumed_from
            if r is not None and r.status_code < 500:
                self.cache.put(self.key, None)  # gone (expired, deleted): start over
        meta = "filename " + base64.b64encode(self.file.name.encode()).decode()
        headers = {**TUS, "Upload-Length": str(self.size), "Upload-Metadata": meta}
        if self.with_upload and self.size:
            offset = self._create_with_upload(headers)
            if offset is not None:
                return offset
        r = self.http.post("/uploads", headers=headers)
        if r.status_code != 201:
            raise ApiError.from_response(r)
        self._created(r)
        self.on_progress(0, self.size)
        return 0

    def _create_with_upload(self, headers: dict[str, str]) -> int | None:
        """POST with the first chunk as its body: the offset the server reached, or None
        when the chunk did not get in (cut, checksum mismatch, a retryable status)."""
        with open(self.file, "rb") as fh:
            data = fh.read(self.chunk)
        try:
            r = self.http.post(
                "/uploads", content=self._pieces(0, data), headers={**headers, **self._body(data)}
            )
        except httpx.TransportError as e:
            self.on_retry(f"connection lost ({type(e).__name__}) in the POST", 0.0, 0)
            return None
        if r.status_code in RETRY_STATUSES or r.status_code == 460:
            self.on_retry(f"HTTP {r.status_code} to the POST: {_message(r)}", 0.0, 0)
            return None
        if r.status_code != 201:
            raise ApiError.from_response(r)
        self._created(r)
        offset = int(r.headers.get("Upload-Offset") or 0)  # absent: the body was not taken
        self.on_progress(offset, self.size)
        return offset

    def _created(self, r: httpx.Response) -> None:
        self.url = urljoin(str(self.http.base_url).rstrip("/") + "/", r.headers["Location"])
        self.cache.put(self.key, self.url)

    def _body(self, data: bytes) -> dict[str, str]:
        """The headers of a body of upload bytes (a PATCH's, or the POST's first chunk)."""
        headers = {"Content-Type": OFFSET_TYPE, "Content-Length": str(len(data))}
        if self.checksum:
            digest = base64.b64encode(hashlib.sha1(data).digest()).decode()
            headers["Upload-Checksum"] = f"sha1 {digest}"
        return headers

    def _patch(self, offset: int, data: bytes) -> int:
        headers = {**TUS, "Upload-Offset": str(offset), **self._body(data)}
        try:
            r = self.http.patch(self.url, content=self._pieces(offset, data), headers=headers)
        except httpx.TransportError as e:
            raise _Retry(
                f"connection lost ({type(e).__name__}) in the PATCH from byte {offset}"
            ) from None
        if r.status_code == 204:
            new = int(r.headers["Upload-Offset"])
            self.on_progress(new, self.size)
            return new
        if r.status_code in RETRY_STATUSES or r.status_code in (409, 460):
            raise _Retry(f"HTTP {r.status_code}: {_message(r)}", r.status_code)
        if r.status_code == 404:
            self.cache.put(self.key, None)
        raise ApiError.from_response(r)

    def _pieces(self, offset: int, data: bytes) -> Iterator[bytes]:
        view = memoryview(data)
        for i in range(0, len(data), PIECE):
            yield bytes(view[i : i + PIECE])
            self.on_progress(offset + min(i + PIECE, len(data)), self.size)

    def _head_retrying(self) -> int:
        """HEAD for the offset, retrying (with the same budget) while the server is away."""
        for n in range(self.retries + 1):
            try:
                r = self.http.head(self.url, headers=TUS)
            except httpx.TransportError as e:
                why = type(e).__name__
            else:
                if r.status_code == 200:
                    return int(r.headers["Upload-Offset"])
                if r.status_code not in RETRY_STATUSES:
                    if r.status_code == 404:
                        self.cache.put(self.key, None)
                    raise ApiError.from_response(r)
                why = f"HTTP {r.status_code}"
            wait = min(self.backoff_s * 2**n, 10.0)
            self.on_retry(f"HEAD: {why}", wait, n + 1)
            time.sleep(wait)
        raise RetriesExhausted(self.retries, "HEAD kept failing")

    def forget(self) -> None:
        self.cache.put(self.key, None)


class _Retry(Exception):
    def __init__(self, why: str, status: int = 0) -> None:
        super().__init__(why)
        self.why = why
        self.status = status


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return r.reason_phrase
