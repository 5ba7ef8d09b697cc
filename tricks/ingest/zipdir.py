"""A .zip central-directory reader whose memory does not grow with the member count.

Python's zipfile keeps a ZipInfo object (about 0.5 KiB) per member, so an image archive
of 2M files would hold about 1 GiB of directory before the first image is read. This
reader keeps one integer per member: the sorted local-header offsets (uint32 while the
archive is under 4 GiB), which bound each member's data so that members cannot overlap.
Everything else is read again from the central directory, streamed in blocks, each time
`entries()` is iterated; an `Entry` lives only while its member is being visited.

What it reads: stored and deflated members, zip64 (the end-of-directory locator and
record, and the 0x0001 extra field in directory entries), names in UTF-8 (flag bit 11)
or cp437, data prepended to the archive (as zipfile does). What it refuses, by raising
ZipError: multi-disk archives, a directory that lies outside the file or about its
own size, two entries sharing one local header, a local header that does not match its
entry, a member's data running into the next member or the directory, data shorter
than declared, and a CRC-32 mismatch once a member has been read to its end. A member
is never inflated past its declared size. Encryption and the method are left to the
caller to refuse (it names the member), as are names: only a NUL byte is refused here.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

STORED, DEFLATED = 0, 8
CHUNK = 256 * 1024  # directory and compressed data are read this much at a time
MAX_EXTRA = 3 * 0xFFFF  # the most one directory entry's name, extra and comment can add
EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory record, 22 bytes
LOCATOR = struct.Struct("<4sIQI")  # zip64 end of central directory locator, 20 bytes
EOCD64 = struct.Struct("<4sQHHIIQQQQ")  # zip64 end of central directory record, 56 bytes
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # central directory entry, 46 bytes
LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header, 30 bytes
U32, U16 = 0xFFFFFFFF, 0xFFFF


class ZipError(Exception):
    """A .zip we refuse: corrupt, truncated, lying or using what this reader does not read.

    Not an OSError or ValueError on purpose: Pillow, reading a member, lets it through
    unchanged instead of calling the member "not an image"."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One central directory entry, as far as a reader needs it."""

    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int  # of the local header, in the file (prepended data counted)
    mode: int  # the Unix file type and permission bits, 0 when none were recorded
    end: int  # where the member's data must end: the next local header or the directory

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


class ZipDirectory:
    """An open .zip: `entries()` in directory order, `open(entry)` a member's bytes.

    The directory is checked whole when the archive is opened (every entry, at most
    `max_entries` of them), so a corrupt directory is refused before any member is read."""

    def __init__(self, path: Path, max_entries: int | None = None) -> None:
        self._fp = open(path, "rb")  # noqa: SIM115 - closed by close()
        try:
            self._size = self._fp.seek(0, io.SEEK_END)
            self._start, self._length, self._concat = self._end_record()
            limit = self._length // CENTRAL.size
            if max_entries is not None:
                limit = min(limit, max_entries)
            wide = self._start > U32
            offsets = np.empty(limit + 1, dtype=np.uint64 if wide else np.uint32)
            n = 0
            for e in self._scan(None):
                if n == limit:
                    raise ZipError(f"it has more than {limit} entries (files and folders)")
                offsets[n] = e.offset
                n += 1
            self._offsets = np.sort(offsets[:n])
            del offsets
            if n > 1 and bool(np.any(self._offsets[1:] == self._offsets[:-1])):
                raise ZipError("two directory entries share one member's data")
            self._data = open(path, "rb")  # noqa: SIM115 - members are read through this one
        except BaseException:
            self._fp.close()
            raise

    def __enter__(self) -> ZipDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._fp.close()
        if hasattr(self, "_data"):
            self._data.close()

    def __len__(self) -> int:
        return len(self._offsets)

    def entries(self) -> Iterator[Entry]:
        """The directory's entries in its order, read again from the file each time."""
        return self._scan(self._offsets)

    def _end_record(self) -> tuple[int, int, int]:
        """(directory start in the file, its length, bytes prepended to the archive)."""
        size = self._size
        if size < EOCD.size:
            raise ZipError("the file is too short to be a .zip")
        tail_len = min(size, EOCD.size + 0xFFFF + LOCATOR.size + EOCD64.size)
        self._fp.seek(size - tail_len)
        tail = self._fp.read(tail_len)
        at = tail.rfind(b"PK\x05\x06", 0, len(tail) - EOCD.size + 4)
        if at < 0:
            raise ZipError("no end of central directory record (is it a .zip file?)")
        _, disk, cd_disk, _, count, length, start, comment = EOCD.unpack_from(tail, at)
        record = size - tail_len + at  # where the end record is in the file
        if record + EOCD.size + comment > size:
            raise ZipError("the end of central directory record runs past the end of the file")
        loc = at - LOCATOR.size
        if loc >= 0 and tail[loc : loc + 4] == b"PK\x06\x07":
            _, _, _, disks = LOCATOR.unpack_from(tail, loc)
            if (
                loc < EOCD64.size
                or tail[loc - EOCD64.size : loc - EOCD64.size + 4] != b"PK\x06\x06"
            ):
                raise ZipError("the zip64 end of central directory record is missing")
            fields = EOCD64.unpack_from(tail, loc - EOCD64.size)
            disk, cd_disk, length, start = fields[4], fields[5], fields[8], fields[9]
            record -= LOCATOR.size + EOCD64.size
            if disks > 1:
                disk = 1
        elif U32 in (length, start):
            raise ZipError("the end record points to zip64 fields but the archive has none")
        if disk or cd_disk:
            raise ZipError("multi-disk (split) archives are not supported")
        concat = record - length - start
        if concat < 0 or start + length > size:
            raise ZipError(
                f"the central directory ({length} bytes at {start}) lies outside the file"
            )
        return start + concat, length, concat

    def _scan(self, offsets: np.ndarray | None) -> Iterator[Entry]:
        """Parse the directory a block at a time; each entry's end bound from `offsets`."""
        fp, start, left = self._fp, self._start, self._length
        buf, pos = b"", 0
        while left or pos < len(buf):
            if len(buf) - pos < CENTRAL.size + MAX_EXTRA and left:
                fp.seek(start + self._length - left)
                more = fp.read(min(CHUNK, left))
                if not more:
                    raise ZipError("the central directory is truncated")
                left -= len(more)
                buf, pos = buf[pos:] + more, 0
            if len(buf) - pos < CENTRAL.size:
                raise ZipError("the central directory is truncated (a partial entry at its end)")
            (sig, _, _, flags, method, _, _, crc, comp, size, n_name, n_extra, n_comment,
             disk, _, attrs, offset) = CENTRAL.unpack_from(buf, pos)  # fmt: skip
            if sig != b"PK\x01\x02":
                raise ZipError(f"a central directory entry is corrupt (at byte {start + pos})")
            body = pos + CENTRAL.size
            pos = body + n_name + n_extra + n_comment
            if pos > len(buf):
                raise ZipError("the central directory is truncated (a partial entry at its end)")
            raw = buf[body : body + n_name]
            if U32 in (comp, size, offset) or disk == U16:
                size, comp, offset = _zip64(buf, body + n_name, n_extra, size, comp, offset, disk)
            offset += self._concat
            if offset + LOCAL.size > self._start:
                raise ZipError(
                    f"a directory entry points past the archive's data (to byte {offset})"
                )
            if b"\0" in raw:
                raise ZipError(f"a member's name holds a NUL byte ({raw!r})")
            try:
                name = raw.decode("utf-8" if flags & 0x800 else "cp437")
            except UnicodeDecodeError:
                raise ZipError(f"a member's name is not valid UTF-8 ({raw!r})") from None
            end = self._start
            if offsets is not None:
                # the key in the array's own dtype: a Python int would cast the whole array
                i = int(np.searchsorted(offsets, offsets.dtype.type(offset), side="right"))
                end = int(offsets[i]) if i < len(offsets) else self._start
            yield Entry(name, raw, flags, method, crc, comp, size, offset, attrs >> 16, end)

    def open(self, e: Entry) -> io.BufferedReader:
        """The member's bytes, inflated as read: seekable, CRC-checked when read to its end."""
        fp = self._data
        fp.seek(e.offset)
        head = fp.read(LOCAL.size)
        if len(head) < LOCAL.size or head[:4] != b"PK\x03\x04":
            raise ZipError(f"'{e.name}' has no local header where the directory says")
        n_name, n_extra = LOCAL.unpack(head)[9:]
        if fp.read(n_name) != e.raw_name:
            raise ZipError(f"'{e.name}' has another name in its local header")
        data = e.offset + LOCAL.size + n_name + n_extra
        if data + e.compressed > e.end:
            raise ZipError(
                f"'{e.name}' declares {e.compressed} compressed bytes, more than the archive "
                "holds before the next member (overlapping or lying sizes)"
            )
        if e.method == STORED and e.compressed != e.size:
            raise ZipError(f"'{e.name}' is stored but its two declared sizes differ")
        if e.size == 0 and e.crc != 0:
            raise ZipError(f"'{e.name}' is empty but its CRC-32 is not that of no bytes")
        return io.BufferedReader(_Member(fp, e, data), 64 * 1024)


def _zip64(
    buf: bytes, at: int, n: int, size: int, comp: int, offset: int, disk: int
) -> tuple[int, int, int]:
    """The values a zip64 extra field (0x0001) holds for those saturated in the entry."""
    end = at + n
    while at + 4 <= end:
        kind, length = struct.unpack_from("<HH", buf, at)
        at += 4
        if at + length > end:
            break
        if kind == 0x0001:
            wanted = [v == U32 for v in (size, comp, offset)] + [disk == U16]
            need = 8 * sum(wanted[:3]) + 4 * wanted[3]
            if length < need:
                raise ZipError("a zip64 extra field is shorter than the values it must hold")
            vals = [size, comp, offset]
            for i in range(3):
                if wanted[i]:
                    (vals[i],) = struct.unpack_from("<Q", buf, at)
                    at += 8
            if wanted[3] and struct.unpack_from("<I", buf, at)[0] != 0:
                raise ZipError("multi-disk (split) archives are not supported")
            return vals[0], vals[1], vals[2]
        at += length
    if disk == U16:
        raise ZipError("multi-disk (split) archives are not supported")
    raise ZipError("a directory entry has saturated sizes but no zip64 extra field")


class _Member(io.RawIOBase):
    """A member's inflated bytes: forward seeks skip, backward seeks start over."""

    def __init__(self, fp: io.BufferedReader, e: Entry, data: int) -> None:
        super().__init__()
        self._fp, self._e, self._data = fp, e, data
        self._restart()

    def _restart(self) -> None:
        self._pos = 0  # bytes produced
        self._used = 0  # compressed bytes taken from the file
        self._crc = 0
        self._tail = b""  # compressed bytes zlib was given but has not used yet
        self._z = zlib.decompressobj(-15) if self._e.method == DEFLATED else None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._e.size}[whence]
        target += offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target < self._pos:
            self._restart()
        while self._pos < min(target, self._e.size):
            self._produce(min(CHUNK, target - self._pos))
        return self._pos

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        want = min(len(b), self._e.size - self._pos)
        if want <= 0:
            return 0
        data = self._produce(want)
        b[: len(data)] = data
        return len(data)

    def _produce(self, want: int) -> bytes:
        """1..want more bytes of the member (never past its declared size)."""
        e = self._e
        if self._z is None:
            self._fp.seek(self._data + self._pos)
            data = self._fp.read(want)
        else:
            data = b""
            while not data:
                src = self._tail
                if not src:
                    take = min(CHUNK, e.compressed - self._used)
                    if take <= 0 or self._z.eof:
                        break
                    self._fp.seek(self._data + self._used)
                    src = self._fp.read(take)
                    if len(src) < take:
                        break
                    self._used += take
                try:
                    data = self._z.decompress(src, want)
                except zlib.error as err:
                    raise ZipError(f"'{e.name}' has corrupt compressed data ({err})") from None
                self._tail = self._z.unconsumed_tail
        if not data:
            raise ZipError(
                f"'{e.name}' is truncated: its data ends after {self._pos} of {e.size} bytes"
            )
        self._pos += len(data)
        self._crc = zlib.crc32(data, self._crc)
        if self._pos == e.size and self._crc != e.crc:
            raise ZipError(f"'{e.name}' fails its CRC-32 check: the data is corrupt")
        return data


def drain(f: IO[bytes]) -> None:
    """Read a member to its end, so that its CRC-32 is checked; the bytes are dropped."""
    while f.read(CHUNK):
        pass
