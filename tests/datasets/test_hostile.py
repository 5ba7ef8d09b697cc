"""Hostile uploads: each is a 4xx naming the problem, and nothing is left in the datasets dir."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
from support import assert_error

from tests.datasets.files import class_tree, images, npz, parquet, png, tar_of, upload, zip_of
from tests.datasets.zips import patch_central


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def lying_npz() -> bytes:
    """x.npy declares 50M rows of 5 floats (1 GB) but holds 97 KB of data."""
    x = npy_header((50_000_000, 5)) + b"\0" * 97_000
    y = io.BytesIO()
    np.save(y, np.arange(40) % 2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", x)
        zf.writestr("y.npy", y.getvalue())
    return buf.getvalue()


def bomb_npz() -> bytes:
    """80 MiB of zeros deflated to ~80 KB: above this API's 64 MiB (8 x upload) inflate cap."""
    return npz(True, x=np.zeros((20 * 2**20, 1), np.float32), y=np.zeros(20 * 2**20, np.uint8))


def png_bomb(w: int = 100_000, h: int = 100_000) -> bytes:
    """A PNG whose header claims w x h pixels (10 G) with a few bytes of image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def good_tree() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return class_tree(
        {c: [rng.integers(0, 256, (6, 6, 3), dtype=np.uint8) for _ in range(6)] for c in ("a", "b")}
    )


def with_member(name: str, data: bytes) -> dict[str, bytes]:
    return {**good_tree(), name: data}


def patched(**values: int) -> bytes:
    """good_tree() as a .zip whose directory entry for a/001.png says something else."""
    return patch_central(zip_of(good_tree()), "a/001.png", **values)


def cases():
    """(id, filename, bytes, status, words in the message, form)."""
    x, y = images(n=20)
    bare = io.BytesIO()
    np.save(bare, np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    valid_gz = tar_of(good_tree(), "w:gz")
    valid_pq = parquet({"f": np.arange(30.0), "label": np.arange(30) % 2})
    return [
        ("lying-header", "lie.npz", lying_npz(), 422, "header says", {}),
        ("zip-bomb", "bomb.npz", bomb_npz(), 422, "inflates", {}),
        (
            "archive-bomb",
            "bomb.zip",
            zip_of(with_member("a/zeros.png", b"\0" * 70 * 2**20)),
            422,
            "inflates",
            {},
        ),
        (
            "png-bomb",
            "bomb.zip",
            zip_of(with_member("a/huge.png", png_bomb())),
            422,
            "pixel limit",
            {},
        ),
        (
            "traversal",
            "t.zip",
            zip_of(with_member("../a/evil.png", png(np.zeros((6, 6, 3), np.uint8)))),
            422,
            "traversal",
            {},
        ),
        ("absolute", "t.tar", tar_of(with_member("/a/evil.png", b"x")), 422, "absolute", {}),
        (
            "symlink",
            "l.tar",
            tar_of(good_tree(), links={"a/link.png": "/etc/passwd"}),
            422,
            "link",
            {},
        ),
        (
            "nested",
            "n.zip",
            zip_of(with_member("a/more.zip", zip_of(good_tree()))),
            422,
            "nested",
            {},
        ),
        ("not-an-image", "r.zip", zip_of(with_member("a/readme.txt", b"hi")), 422, "not a png", {}),
        (
            "fake-png",
            "f.zip",
            zip_of(with_member("a/fake.png", b"hello, not a png")),
            422,
            "not a readable",
            {},
        ),
        (
            "one-class",
            "o.zip",
            zip_of({f"a/{k.replace('/', '-')}": v for k, v in good_tree().items()}),
            422,
            "single class",
            {},
        ),
        (
            "no-folder",
            "n.zip",
            zip_of({"x.png": png(np.zeros((6, 6), np.uint8))}),
            422,
            "class folder",
            {},
        ),
        ("crc-mismatch", "c.zip", patched(crc=12345), 422, "crc-32", {}),
        ("size-lie", "s.zip", patched(size=5000), 422, "truncated", {}),
        ("overlap", "o.zip", patched(compressed=5000), 422, "overlapping", {}),
        ("shared-data", "d.zip", patched(offset=0), 422, "share", {}),
        ("encrypted", "e.zip", patched(flags=1), 422, "encrypted", {}),
        ("bzip2", "b.zip", patched(method=12), 422, "unsupported compression", {}),
        ("bare-npy", "x.npy", bare.getvalue(), 422, "np.savez", {}),
        (
            "pickle-member",
            "p.npz",
            npz(x=np.array([{"a": 1}] * 20, dtype=object), y=np.arange(20) % 2),
            422,
            "pickle",
            {},
        ),
        ("truncated-npz", "t.npz", npz(x=x, y=y)[:-500], 422, "zip", {}),
        ("truncated-tgz", "t.tar.gz", valid_gz[: len(valid_gz) // 2], 422, "corrupt", {}),
        ("truncated-parquet", "t.parquet", valid_pq[: len(valid_pq) // 2], 422, "parquet", {}),
        ("unknown-ext", "data.h5", b"\x89HDF\r\n", 422, ".parquet", {}),
        ("image-size-on-npz", "i.npz", npz(x=x, y=y), 422, "image archives", {"image_size": "16"}),
        ("npz-of-many-members", "many.npz", many_members(5000), 422, "more than 16 entries", {}),
    ]


def many_members(n: int) -> bytes:
    """An .npz (zip) of n empty members: its directory alone would cost n ZipInfo objects."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            zf.writestr(f"m{i}.npy", b"")
    return buf.getvalue()


CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_file_is_refused_and_leaves_nothing(ds_api, client, case):
    _, filename, data, status, words, form = case
    before = ds_api.stored()
    listed = {d["id"] for d in client.get("/datasets").json()["data"]}
    err = assert_error(upload(client, filename, data, **form), status)
    text = (err["message"] + str(err["details"])).lower()
    assert words.lower() in text, err
    assert err["details"][0]["loc"][0] in ("file", "image_size"), err
    assert ds_api.stored() == before  # no staging file or directory, no dataset
    assert {d["id"] for d in client.get("/datasets").json()["data"]} == listed


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(ds_api, client):
    from tests.datasets.conftest import MAX_UPLOAD

    before = ds_api.stored()

    def body():  # streamed without a Content-Length: the limit is counted as it arrives
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.npz"\r\n\r\n'
        for _ in range(MAX_UPLOAD // 2**20 + 2):
            yield b"\0" * 2**20
        yield b"\r\n--b--\r\n"

    r = client.post(
        "/datasets", content=body(), headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert_error(r, 413)
    assert ds_api.stored() == before


def test_a_skipped_member_is_never_read(ds_api, client):
    """A __MACOSX file with a CRC that cannot match: skipped by name, so never read (nor
    inflated, the inflated budget does not count it); the same CRC on an image is 422."""
    tree = {**good_tree(), "__MACOSX/a/._001.png": b"\0" * 4096}
    data = patch_central(zip_of(tree), "__MACOSX/a/._001.png", crc=12345)
    r = upload(client, "mac.zip", data)
    assert r.status_code == 201, r.text
    assert r.json()["class_counts"] == [6, 6]  # the 12 images, nothing from __MACOSX
    assert client.delete(f"/datasets/{r.json()['id']}").status_code == 204
