"""Server-Sent Events as the API sends them (GET /jobs/{id}/events): a small parser of the
text/event-stream format (WHATWG HTML, "Server-sent events"), over lines or raw chunks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event; `data` is parsed JSON when it is JSON, else the raw text."""

    id: str | None
    type: str
    data: Any


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from SSE lines (without line endings), per the WHATWG rules we need.

    `data:` lines accumulate (joined with newlines), `event:` sets the type
    (default "message"), `id:` the id, a blank line dispatches, `:` starts a comment.
    A final event without the blank line is dropped, as browsers do.
    """
    data: list[str] = []
    etype = ""
    eid: str | None = None
    last_id: str | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    value: Any = json.loads(text)
                except ValueError:
                    value = text
                last_id = eid if eid is not None else last_id
                yield Event(last_id, etype or "message", value)
            data, etype, eid = [], "", None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            etype = value
        elif field == "id":
            eid = value
        # "retry" and unknown fields are ignored


def _iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Split a byte stream into lines on \\n, \\r\\n or \\r, across chunk boundaries."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        while True:
            i_n, i_r = buf.find(b"\n"), buf.find(b"\r")
            if i_n < 0 and i_r < 0:
                break
            if i_r >= 0 and (i_n < 0 or i_r < i_n):
                if i_r == len(buf) - 1:
                    break  # might be the first half of \r\n; wait for more
                end, skip = i_r, 2 if buf[i_r + 1 : i_r + 2] == b"\n" else 1
            else:
                end, skip = i_n, 1
            yield buf[:end].decode("utf-8", "replace")
            buf = buf[end + skip :]
    if buf:
        yield buf.rstrip(b"\r").decode("utf-8", "replace")


def parse_sse_bytes(chunks: Iterable[bytes]) -> Iterator[Event]:
    return parse_sse(_iter_lines(chunks))
