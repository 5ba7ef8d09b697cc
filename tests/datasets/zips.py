"""Byte-level edits of .zip files made by Python's zipfile, written here with struct.

Independent of tricks/ingest/zipdir.py on purpose: these follow the format (APPNOTE
4.3.7, 4.3.12, 4.3.14-16, 4.5.3) field by field, and every rewritten archive that should
stay valid is checked against Python's zipfile by the tests that use it.
"""

from __future__ import annotations

import struct

EOCD = "<4sHHHHIIH"
CENTRAL = "<4sHHHHHHIIIHHHHHII"
FIELDS = {  # (where, how) in a central directory entry
    "flags": (8, "<H"), "method": (10, "<H"), "crc": (16, "<I"), "compressed": (20, "<I"),
    "size": (24, "<I"), "offset": (42, "<I"),
}  # fmt: skip


def central(data: bytes) -> tuple[int, list[int]]:
    """(where the end record is, where each central entry starts) of a plain zip."""
    end = data.rindex(b"PK\x05\x06")
    _, _, _, _, count, _, start, _ = struct.unpack_from(EOCD, data, end)
    at, entries = start, []
    for _ in range(count):
        assert data[at : at + 4] == b"PK\x01\x02"
        entries.append(at)
        n, e, c = struct.unpack_from("<HHH", data, at + 28)
        at += 46 + n + e + c
    return end, entries


def entry_name(data: bytes, at: int) -> str:
    (n,) = struct.unpack_from("<H", data, at + 28)
    return data[at + 46 : at + 46 + n].decode()


def patch_central(data: bytes, name: str, **values: int) -> bytes:
    """The archive with fields of the named member's central entry changed (FIELDS)."""
    out = bytearray(data)
    for at in central(data)[1]:
        if entry_name(data, at) == name:
            for field, v in values.items():
                where, how = FIELDS[field]
                struct.pack_into(how, out, at + where, v)
            return bytes(out)
    raise KeyError(name)


def local_data(data: bytes, name: str) -> int:
    """Where the named member's data starts (after its local header)."""
    for at in central(data)[1]:
        if entry_name(data, at) == name:
            (off,) = struct.unpack_from("<I", data, at + 42)
            n, e = struct.unpack_from("<HH", data, off + 26)
            return off + 30 + n + e
    raise KeyError(name)


def to_zip64(data: bytes) -> bytes:
    """The same archive with a zip64 directory: every entry's sizes and offset saturated
    (0xFFFFFFFF) and held in a 0x0001 extra field, then a zip64 end record and locator
    and an end record whose count, size and offset are saturated too."""
    end, entries = central(data)
    start = entries[0] if entries else end
    rows = []
    for at in entries:
        fields = list(struct.unpack_from(CENTRAL, data, at))
        n, e, c = fields[10], fields[11], fields[12]
        name = data[at + 46 : at + 46 + n]
        extra = data[at + 46 + n : at + 46 + n + e]
        comment = data[at + 46 + n + e : at + 46 + n + e + c]
        csize, usize, offset = fields[8], fields[9], fields[16]
        z64 = struct.pack("<HHQQQ", 1, 24, usize, csize, offset)
        fields[8] = fields[9] = fields[16] = 0xFFFFFFFF
        fields[11] = len(z64) + len(extra)
        rows.append(struct.pack(CENTRAL, *fields) + name + z64 + extra + comment)
    cd = b"".join(rows)
    record_at = start + len(cd)
    record = struct.pack(
        "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, len(rows), len(rows), len(cd), start
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, record_at, 1)
    eocd = struct.pack(EOCD, b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:start] + cd + record + locator + eocd
