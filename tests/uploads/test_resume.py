"""A PATCH cut in the middle keeps what arrived: HEAD reports exactly the bytes on disk, a PATCH
from there finishes the upload, and the file is the source byte for byte (sha256)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from urllib.parse import urlsplit

import httpx
from support import wait_for
from uploads.tus_http import OFFSET_TYPE, TUS, create, head_offset, patch

SIZE = 6 * 2**20 + 12345


def _send_cut(url: str, loc: str, body: bytes, sent: int, landed) -> None:
    """A PATCH announcing the whole body over a raw socket, closed after `sent` bytes of it
    once landed() says the server is writing (a drop before it read anything keeps nothing)."""
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        head = (
            f"PATCH {loc} HTTP/1.1\r\nHost: {u.netloc}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: {OFFSET_TYPE}\r\nUpload-Offset: 0\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        s.sendall(head.encode() + body[:sent])
        wait_for(landed, 20, what="the first bytes on disk")


def _unlocked(api, upload_id: str) -> bool:
    store = api.store()
    return not store.r.exists(store.keys.upload_lock(upload_id))


def test_cut_patch_keeps_the_bytes_on_disk_and_resumes(client, tus_api):
    data = os.urandom(SIZE)
    loc = create(client, SIZE)
    upload_id = loc.rsplit("/", 1)[1]
    sent = SIZE // 2 + 777
    path = tus_api.file(upload_id)
    _send_cut(tus_api.url, loc, data, sent, lambda: path.stat().st_size > 0)
    wait_for(lambda: _unlocked(tus_api, upload_id), 20, what="the cut PATCH to end")
    offset = head_offset(client, loc)
    on_disk = tus_api.file(upload_id).stat().st_size
    assert offset == on_disk
    assert 0 < offset <= sent
    assert tus_api.file(upload_id).read_bytes() == data[:offset]  # what is there is right

    r = patch(client, loc, offset, data[offset:])
    assert r.status_code == 204, r.text
    assert int(r.headers["Upload-Offset"]) == SIZE
    stored = hashlib.sha256(tus_api.file(upload_id).read_bytes()).hexdigest()
    assert stored == hashlib.sha256(data).hexdigest()


def test_head_during_a_patch_never_runs_ahead_of_the_file(client, tus_api):
    """While a slow PATCH streams, every HEAD offset is at most the file's size then."""
    loc = create(client, 4 * 2**20)
    upload_id = loc.rsplit("/", 1)[1]
    gate = threading.Event()
    seen: list[tuple[int, int]] = []

    def body():
        for i in range(4):
            yield bytes([i]) * 2**20
            gate.wait(0.3)

    def watch():
        with httpx.Client(base_url=tus_api.url, timeout=10) as c:
            while not gate.is_set():
                off = head_offset(c, loc)
                seen.append((off, tus_api.file(upload_id).stat().st_size))

    t = threading.Thread(target=watch)
    t.start()
    try:
        h = {
            **TUS,
            "Content-Type": OFFSET_TYPE,
            "Upload-Offset": "0",
            "Content-Length": str(4 * 2**20),
        }
        r = client.patch(loc, content=body(), headers=h)
    finally:
        gate.set()
        t.join()
    assert r.status_code == 204, r.text
    assert seen and all(off <= size for off, size in seen)
    assert any(0 < off < 4 * 2**20 for off, _ in seen)  # it moved while the PATCH ran


def test_a_second_patch_while_one_writes_is_423(client, tus_api):
    loc = create(client, 2 * 2**20)
    release = threading.Event()
    result: dict[str, int] = {}

    def slow():
        yield b"a" * 1000
        release.wait(10)
        yield b"b" * 1000

    def first():
        with httpx.Client(base_url=tus_api.url, timeout=30) as c:
            h = {**TUS, "Content-Type": OFFSET_TYPE, "Upload-Offset": "0", "Content-Length": "2000"}
            result["status"] = c.patch(loc, content=slow(), headers=h).status_code

    t = threading.Thread(target=first)
    t.start()
    try:
        store = tus_api.store()
        wait_for(
            lambda: store.r.exists(store.keys.upload_lock(loc.rsplit("/", 1)[1])),
            10,
            what="the lock",
        )
        r = patch(client, loc, 0, b"c" * 10)
        assert r.status_code == 423
        assert "another PATCH" in r.json()["error"]["message"]
    finally:
        release.set()
        t.join()
    assert result["status"] == 204
    assert head_offset(client, loc) == 2000


def test_a_writer_that_died_before_recording_is_repaired_to_the_file(client, tus_api):
    """Bytes on disk that the record does not know of (the API died between the write and the
    offset's record) are the upload's: HEAD reports the file's size, capped at the length."""
    loc = create(client, 100)
    upload_id = loc.rsplit("/", 1)[1]
    assert patch(client, loc, 0, b"a" * 30).status_code == 204
    with open(tus_api.file(upload_id), "ab") as fh:
        fh.write(b"b" * 20)
    assert head_offset(client, loc) == 50
    assert patch(client, loc, 50, b"c" * 50).status_code == 204
    assert tus_api.file(upload_id).read_bytes() == b"a" * 30 + b"b" * 20 + b"c" * 50


def test_termination_during_a_patch_stops_it(client, tus_api):
    loc = create(client, 2 * 2**20)
    upload_id = loc.rsplit("/", 1)[1]
    release = threading.Event()
    result: dict[str, httpx.Response] = {}

    def slow():
        yield b"a" * (1 << 20)  # one flush: written and recorded
        release.wait(10)
        yield b"b" * (1 << 20)

    def first():
        with httpx.Client(base_url=tus_api.url, timeout=30) as c:
            h = {**TUS, "Content-Type": OFFSET_TYPE, "Upload-Offset": "0"}
            h["Content-Length"] = str(2 << 20)
            result["r"] = c.patch(loc, content=slow(), headers=h)

    t = threading.Thread(target=first)
    t.start()
    try:
        wait_for(lambda: head_offset(client, loc) == 1 << 20, 10, what="the first MiB")
        assert client.delete(loc, headers=TUS).status_code == 204
    finally:
        release.set()
        t.join()
    assert result["r"].status_code == 409  # its lock went with the upload
    assert "deleted" in result["r"].json()["error"]["message"]
    assert not tus_api.file(upload_id).exists()
    assert client.head(loc, headers=TUS).status_code == 404
    store = tus_api.store()
    assert not store.r.exists(store.keys.upload(upload_id))  # no write brought the record back
