"""POST /datasets' multipart body, streamed straight to a staging file in the datasets dir.

Neither the body nor the file is ever held in memory (Starlette's form parser would
spool to /tmp and then we would copy it): python-multipart's push parser is fed the
request's chunks and the `file` part's bytes are written as they come, counted against
max_upload_bytes (413 mid-stream). Other fields are small text (name, image_size).
Whatever goes wrong, the caller removes the staging file (`Received.discard`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from api.errors import ApiError, invalid

MAX_FIELD_BYTES = 1024
MAX_PARTS = 16


@dataclass
class Received:
    path: Path
    filename: str | None = None
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class _Parts:
    """python-multipart callbacks: headers of each part, then its data to the file or a field."""

    def __init__(self, out: Received, fh: IO[bytes], check_size: Callable[[int], None]) -> None:
        self.out, self.fh, self.check_size = out, fh, check_size
        self.parts = 0
        self.header_name = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.name: str | None = None
        self.is_file = False
        self.value = bytearray()

    def callbacks(self) -> dict[str, Callable]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda d, s, e: self._add("header_name", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("header_value", d[s:e]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def _add(self, attr: str, data: bytes) -> None:
        value = getattr(self, attr) + data
        if len(value) > MAX_FIELD_BYTES * 8:
            raise invalid(["body"], "a multipart part header is too long")
        setattr(self, attr, value)

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise invalid(["body"], f"the form has more than {MAX_PARTS} parts")
        self.headers, self.name, self.is_file, self.value = {}, None, False, bytearray()

    def on_header_end(self) -> None:
        self.headers[self.header_name.lower()] = self.header_value
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, opts = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = (opts.get(b"name") or b"").decode("utf-8", "replace")
        if self.name == "file":
            if self.out.filename is not None:
                raise invalid(["file"], "send one file per upload")
            raw = opts.get(b"filename")
            self.out.filename = raw.decode("utf-8", "replace") if raw is not None else ""
            self.is_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.is_file:
            self.out.size += end - start
            self.check_size(self.out.size)
            self.fh.write(data[start:end])
        else:
            self.value += data[start:end]
            if len(self.value) > MAX_FIELD_BYTES:
                raise invalid([self.name or "body"], f"the field is above {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if not self.is_file and self.name:
            self.out.fields[self.name] = self.value.decode("utf-8", "replace")


async def receive_multipart(
    request: Request, datasets_dir: Path, check_size: Callable[[int], None]
) -> Received:
    """Stream the body into `datasets_dir/.upload-*.part`; the caller discards it when done."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise invalid(["body"], "the multipart body has no boundary in its Content-Type")
    datasets_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=datasets_dir, prefix=".upload-", suffix=".part")
    out = Received(Path(tmp))
    try:
        with os.fdopen(fd, "wb") as fh:
            parts = _Parts(out, fh, check_size)
            parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
    except FormParserError as e:
        out.discard()
        raise invalid(["body"], f"the multipart body is malformed: {e}") from None
    except ClientDisconnect:
        out.discard()
        raise ApiError(400, "bad_request", "the client disconnected during the upload") from None
    except BaseException:
        out.discard()
        raise
    return out
