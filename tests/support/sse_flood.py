"""Many real SSE connections at once, on raw asyncio sockets (an httpx client per stream
costs far more than the API side being measured). For tests/security/test_dos_streams.py
and bench/attack.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class RawStream:
    """One open GET with its status; `body` is what was read so far (chunk framing included)."""

    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    body: bytearray = field(default_factory=bytearray)

    async def read_until(self, needle: bytes, timeout: float) -> bool:
        """Read until `needle` has arrived (True) or the server closed the stream (False)."""
        async with asyncio.timeout(timeout):
            while needle not in self.body:
                chunk = await self.reader.read(65536)
                if not chunk:
                    return False
                self.body += chunk
        return True

    def close(self) -> None:
        self.writer.close()


async def open_stream(
    base_url: str, path: str, headers: dict[str, str] | None = None, timeout: float = 60
) -> RawStream:
    """GET base_url+path; for a 200 wait for the first line of the stream ("retry: ...")."""
    u = urlsplit(base_url)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(u.hostname, u.port), timeout)
    head = f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nAccept: text/event-stream\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    writer.write((head + "\r\n").encode())
    await writer.drain()
    async with asyncio.timeout(timeout):
        status = int((await reader.readline()).split()[1])
        hdrs: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode().partition(":")
            hdrs[k.strip().lower()] = v.strip()
    s = RawStream(status, hdrs, reader, writer)
    if status == 200:
        await s.read_until(b"retry:", timeout)
    elif "content-length" in hdrs:
        s.body += await asyncio.wait_for(reader.readexactly(int(hdrs["content-length"])), timeout)
    return s


async def open_many(
    base_url: str, paths: list[str], headers: dict[str, str] | None = None, parallel: int = 50
) -> list[RawStream | BaseException]:
    """Open one stream per path, at most `parallel` handshakes at a time; keep them open."""
    gate = asyncio.Semaphore(parallel)

    async def one(path: str) -> RawStream:
        async with gate:
            return await open_stream(base_url, path, headers)

    return await asyncio.gather(*(one(p) for p in paths), return_exceptions=True)
