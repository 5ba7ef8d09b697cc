"""tus requests the upload tests share (tests/uploads is on the path as `uploads`)."""

from __future__ import annotations

import base64

import httpx

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_TYPE = "application/offset+octet-stream"
MAX_UPLOAD = 512 * 2**20  # the tus_api fixture's max_upload_bytes
MAX_TOTAL = 1024 * 2**20  # and max_dataset_bytes_total


def create(c: httpx.Client, length: int, filename: str | None = "data.npz") -> str:
    """POST /uploads → the upload's path (/uploads/{id})."""
    headers = {**TUS, "Upload-Length": str(length)}
    if filename is not None:
        headers["Upload-Metadata"] = "filename " + base64.b64encode(filename.encode()).decode()
    r = c.post("/uploads", headers=headers)
    assert r.status_code == 201, r.text
    return r.headers["Location"]


def patch(c: httpx.Client, loc: str, offset: int, body: bytes, **headers: str) -> httpx.Response:
    h = {**TUS, "Content-Type": OFFSET_TYPE, "Upload-Offset": str(offset), **headers}
    return c.patch(loc, content=body, headers=h)


def head_offset(c: httpx.Client, loc: str) -> int:
    r = c.head(loc, headers=TUS)
    assert r.status_code == 200, r.status_code
    return int(r.headers["Upload-Offset"])
