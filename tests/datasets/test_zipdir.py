"""tricks/ingest/zipdir.py against archives written by Python's zipfile, edited by hand.

Oracles: the bytes each member was written with, zipfile's own reading of the same
file (names, sizes, CRCs, order), and tracemalloc's count of what stays allocated.
"""

from __future__ import annotations

import io
import os
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.datasets.zips import local_data, patch_central, to_zip64
from tricks.ingest.zipdir import ZipDirectory, ZipError, drain


def members(seed: int = 0) -> dict[str, bytes]:
    """Random and repetitive bytes, 0 B to 1.5 MiB (more than one 256 KiB read), UTF-8 names."""
    rng = np.random.default_rng(seed)
    out = {"empty/none.bin": b"", "chat/é-ü.png": b"\x89PNG" + bytes(range(256)) * 9}
    for i, n in enumerate([1, 100, 70_000, 1_500_000]):
        out[f"rand/{i}.bin"] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        out[f"rep/{i}.bin"] = (b"abcdefgh" * (n // 8 + 1))[:n]
    return out


def write(path: Path, data: dict[str, bytes], method: int, force_zip64: bool = False) -> bytes:
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.mkdir("dir")
        for name, value in data.items():
            with zf.open(name, "w", force_zip64=force_zip64) as f:
                f.write(value)
    return path.read_bytes()


def read_all(path: Path) -> dict[str, bytes]:
    got = {}
    with ZipDirectory(path) as zd:
        for e in zd.entries():
            if not e.is_dir:
                with zd.open(e) as f:
                    got[e.name] = f.read()
    return got


def refused(path: Path, data: bytes | None = None) -> str:
    """The ZipError's message from opening and reading every member to its end."""
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(ZipError) as err:
        with ZipDirectory(path) as zd:
            for e in zd.entries():
                if not e.is_dir:
                    with zd.open(e) as f:
                        drain(f)
    return str(err.value)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("force_zip64", [False, True])
def test_members_read_back_as_written(tmp_path, method, force_zip64):
    data = members()
    write(tmp_path / "a.zip", data, method, force_zip64)
    assert read_all(tmp_path / "a.zip") == data
    with zipfile.ZipFile(tmp_path / "a.zip") as zf, ZipDirectory(tmp_path / "a.zip") as zd:
        ours = [(e.name, e.size, e.compressed, e.crc, e.method, e.is_dir) for e in zd.entries()]
        theirs = [
            (i.filename, i.file_size, i.compress_size, i.CRC, i.compress_type, i.is_dir())
            for i in zf.infolist()
        ]
        assert ours == theirs and len(zd) == len(theirs)


def test_seeking_inside_a_deflated_member(tmp_path):
    value = members()["rand/3.bin"]
    write(tmp_path / "a.zip", {"x": value}, zipfile.ZIP_DEFLATED)
    with ZipDirectory(tmp_path / "a.zip") as zd:
        (e,) = [e for e in zd.entries() if not e.is_dir]
        with zd.open(e) as f:
            for at, n in [(1_000_000, 10), (5, 300_000), (1_499_990, 100), (0, 8)]:
                f.seek(at)
                assert f.read(n) == value[at : at + n]
            assert f.seek(0, os.SEEK_END) == len(value) and f.read() == b""


def test_a_zip64_directory_is_read(tmp_path):
    data = members(1)
    plain = write(tmp_path / "p.zip", data, zipfile.ZIP_DEFLATED)
    (tmp_path / "z.zip").write_bytes(to_zip64(plain))
    with zipfile.ZipFile(tmp_path / "z.zip") as zf:  # the rewrite itself is a valid zip64
        assert {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()} == data
    assert read_all(tmp_path / "z.zip") == data


def test_data_before_the_archive_is_allowed(tmp_path):
    """A self-extracting stub (zipfile reads these too): offsets shift by its length."""
    data = members(2)
    plain = write(tmp_path / "p.zip", data, zipfile.ZIP_DEFLATED)
    (tmp_path / "s.zip").write_bytes(b"MZ stub " * 1000 + plain)
    assert read_all(tmp_path / "s.zip") == data


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> tuple[Path, int]:
    """70,000 members: zipfile writes a zip64 end record past 65,535 entries."""
    path = tmp_path_factory.mktemp("many") / "many.zip"
    n = 70_000
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(f"class{i % 10}/{i:07d}.png", i.to_bytes(4, "little"))
    return path, n


def test_many_members_with_a_zip64_end_record(many):
    path, n = many
    with ZipDirectory(path) as zd:
        assert len(zd) == n
        seen = 0
        for i, e in enumerate(zd.entries()):
            assert e.name == f"class{i % 10}/{i:07d}.png"
            if i % 997 == 0:
                with zd.open(e) as f:
                    assert f.read() == i.to_bytes(4, "little")
            seen += 1
        assert seen == n


def test_memory_per_member_is_a_few_bytes(many):
    """What the open directory keeps, and the peak while walking it, for 70,000 members
    (zipfile keeps about 0.5 KiB each: 35 MB here)."""
    path, n = many
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with ZipDirectory(path) as zd:
            kept = tracemalloc.get_traced_memory()[0] - base
            tracemalloc.reset_peak()
            for _ in zd.entries():
                pass
            walked = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert kept <= 8 * n + 64 * 1024, kept  # 4 bytes a member, plus buffers
    assert walked <= 8 * n + 2 * 2**20, walked  # plus one block of the directory


def test_a_crc_mismatch_is_refused(tmp_path):
    data = {"a/x.bin": os.urandom(5000), "a/y.bin": b"y" * 4000}
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        good = write(tmp_path / "g.zip", data, method)
        bad = bytearray(good)
        at = local_data(good, "a/y.bin") + 10
        bad[at] ^= 0x01  # one flipped bit: deflate may still decode, the CRC cannot match
        msg = refused(tmp_path / "b.zip", bytes(bad))
        assert "'a/y.bin'" in msg and ("CRC-32" in msg or "corrupt" in msg), msg
    msg = refused(tmp_path / "c.zip", patch_central(good, "a/x.bin", crc=12345))
    assert "'a/x.bin' fails its CRC-32 check" in msg


def test_a_directory_that_lies_about_sizes_is_refused(tmp_path):
    value = os.urandom(3000)
    good = write(tmp_path / "g.zip", {"a/x.bin": value, "a/y.bin": b"1234"}, zipfile.ZIP_DEFLATED)
    c = zipfile.ZipFile(tmp_path / "g.zip").getinfo("a/x.bin").compress_size

    more = patch_central(good, "a/x.bin", size=len(value) + 100)  # inflates to less
    assert "'a/x.bin' is truncated" in refused(tmp_path / "m.zip", more)

    less = patch_central(good, "a/x.bin", size=1000)  # never inflated past 1000 bytes
    (tmp_path / "l.zip").write_bytes(less)
    with ZipDirectory(tmp_path / "l.zip") as zd:
        e = next(e for e in zd.entries() if e.name == "a/x.bin")
        with zd.open(e) as f:
            raw = f.raw  # unbuffered: the bytes inflated so far, no read-ahead
            assert raw.read(999) == value[:999]
            with pytest.raises(ZipError, match="CRC-32"):
                raw.read(500)
            assert raw.tell() == 1000

    over = patch_central(good, "a/x.bin", compressed=c + 200)  # runs into a/y.bin
    assert "overlapping or lying sizes" in refused(tmp_path / "o.zip", over)

    stored = write(tmp_path / "s.zip", {"a/x.bin": value}, zipfile.ZIP_STORED)
    lie = patch_central(stored, "a/x.bin", size=len(value) - 1)
    assert "two declared sizes differ" in refused(tmp_path / "s2.zip", lie)


def test_entries_that_share_or_leave_the_data_are_refused(tmp_path):
    good = write(tmp_path / "g.zip", {"a/x.bin": b"x" * 99, "a/y.bin": b"y" * 99}, 0)
    with zipfile.ZipFile(tmp_path / "g.zip") as zf:
        x_at, y_at = (zf.getinfo(n).header_offset for n in ("a/x.bin", "a/y.bin"))
    shared = patch_central(good, "a/y.bin", offset=x_at)
    assert "share" in refused(tmp_path / "s.zip", shared)
    past = patch_central(good, "a/y.bin", offset=len(good))
    assert "points past" in refused(tmp_path / "p.zip", past)
    wrong = patch_central(good, "a/y.bin", offset=y_at + 3)  # not a local header
    assert "no local header" in refused(tmp_path / "w.zip", wrong)


def test_broken_files_are_refused(tmp_path):
    good = write(tmp_path / "g.zip", members(3), zipfile.ZIP_DEFLATED)
    assert "is it a .zip" in refused(tmp_path / "n.zip", b"not a zip at all" * 100)
    assert "too short" in refused(tmp_path / "t.zip", b"PK")
    for cut in (len(good) // 2, len(good) - 30, 100):
        msg = refused(tmp_path / "c.zip", good[:cut])
        assert "central directory" in msg or "is it a .zip" in msg, msg
    cut_data = good[:2000] + good[-(len(good) - 1_000_000) :]  # member data gone, directory kept
    msg = refused(tmp_path / "d.zip", cut_data)
    assert "outside the file" in msg, msg


def test_the_entry_cap(tmp_path):
    write(tmp_path / "g.zip", {f"a/{i}.bin": b"" for i in range(10)}, 0)
    with ZipDirectory(tmp_path / "g.zip", max_entries=11) as zd:
        assert len(zd) == 11  # the folder "dir/" counts
    with pytest.raises(ZipError, match="more than 10 entries"):
        ZipDirectory(tmp_path / "g.zip", max_entries=10)


def test_an_empty_member_with_a_crc_is_refused(tmp_path):
    good = write(tmp_path / "g.zip", {"a/e.bin": b""}, 0)
    msg = refused(tmp_path / "e.zip", patch_central(good, "a/e.bin", crc=7))
    assert "is empty but its CRC-32" in msg


class _Pipe(io.RawIOBase):
    """Where zipfile cannot seek back, so it writes a data descriptor after each member."""

    def __init__(self) -> None:
        self.out = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def]
        return self.out.write(b)


def test_members_with_data_descriptors(tmp_path):
    data = members(4)
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in data.items():
            zf.writestr(name, value)
    (tmp_path / "d.zip").write_bytes(pipe.out.getvalue())
    with zipfile.ZipFile(tmp_path / "d.zip") as zf:
        assert all(i.flag_bits & 0x08 for i in zf.infolist())  # the case is the one meant
    assert read_all(tmp_path / "d.zip") == data


def test_names_that_cannot_be_read_are_refused(tmp_path):
    good = write(tmp_path / "g.zip", {"a/é.bin": b"x", "a/xZ.bin": b"y"}, 0)
    assert b"\xc3\xa9" in good and good.count(b"xZ") == 2  # local header and directory
    msg = refused(tmp_path / "u.zip", good.replace(b"\xc3\xa9", b"\xff\xfe"))
    assert "not valid UTF-8" in msg
    msg = refused(tmp_path / "n.zip", good.replace(b"xZ", b"x\0"))
    assert "NUL byte" in msg
