"""One PATCH of a few hundred MiB is streamed to disk: the API's resident memory (VmRSS from
/proc) grows by far less than the body, under 64 MiB, and the file is the body (sha256)."""

from __future__ import annotations

import hashlib
import threading

import pytest
from uploads.tus_http import OFFSET_TYPE, TUS, create

MiB = 2**20
SIZE = 320 * MiB
LIMIT = 64 * MiB


def vm_rss(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_a_large_patch_keeps_api_memory_bounded(client, tus_api):
    pid = tus_api.proc.proc.pid
    block = bytes(range(256)) * (4 * 1024)  # 1 MiB, every byte value
    want = hashlib.sha256()
    for i in range(SIZE // MiB):
        want.update(block[i % 256 :] + block[: i % 256])
    loc = create(client, SIZE)
    base = vm_rss(pid)
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], vm_rss(pid))

    def body():
        for i in range(SIZE // MiB):
            yield block[i % 256 :] + block[: i % 256]

    t = threading.Thread(target=sample)
    t.start()
    try:
        h = {**TUS, "Content-Type": OFFSET_TYPE, "Upload-Offset": "0", "Content-Length": str(SIZE)}
        r = client.patch(loc, content=body(), headers=h, timeout=300)
    finally:
        done.set()
        t.join()
    assert r.status_code == 204, r.text
    growth = peak[0] - base
    print(f"VmRSS growth during a {SIZE // MiB} MiB PATCH: {growth / MiB:.1f} MiB")
    assert growth < LIMIT, f"VmRSS grew {growth / MiB:.1f} MiB"
    got = hashlib.sha256()
    with open(tus_api.file(loc.rsplit("/", 1)[1]), "rb") as fh:
        while chunk := fh.read(8 * MiB):
            got.update(chunk)
    assert got.hexdigest() == want.hexdigest()
    assert client.delete(loc, headers=TUS).status_code == 204
