"""PATCH /uploads/{id} with no room left, for real: a file-size limit (RLIMIT_FSIZE) on the
API process, so its writes fail with EFBIG, and, where this user may mount one, a full 1 MiB
tmpfs (ENOSPC). Either way the answer is 507, HEAD reports exactly the bytes in the file
(which are the first bytes sent), and once there is room again a resumed PATCH completes a
file identical to the source."""

from __future__ import annotations

import base64
import hashlib
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from support import Proc, free_port, service_env, wait_for
from uploads.tus_http import create, head_offset, patch

FSIZE = 1_234_567  # the API process's RLIMIT_FSIZE: no file of it may grow past this
# Runs the API under a file-size limit it can later be lifted from (the hard limit stays).
_LIMITED = (
    "import os, resource, sys; R = resource.RLIMIT_FSIZE; "
    "resource.setrlimit(R, (int(sys.argv[1]), resource.getrlimit(R)[1])); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def _launch(redis_server, art: Path, logs: Path, db: int, fsize: int | None = None):
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{db}"
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning"]  # fmt: skip
    if fsize is not None:
        argv = [sys.executable, "-c", _LIMITED, str(fsize), *argv]
    proc = Proc(argv, service_env(redis_url, art), logs / f"api-{db}.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60, what="API")
    except TimeoutError:
        print("API log:\n", proc.tail())
        proc.stop()
        raise
    return url, proc


@pytest.fixture
def fsize_api(redis_server, tmp_path) -> Iterator[tuple[str, Proc, Path]]:
    art = tmp_path / "artifacts"
    art.mkdir()
    url, proc = _launch(redis_server, art, tmp_path, 11, FSIZE)
    yield url, proc, art
    proc.stop()


@pytest.fixture
def tmpfs_api(redis_server, tmp_path) -> Iterator[tuple[str, Path]]:
    uploads = tmp_path / "artifacts" / "uploads"
    uploads.mkdir(parents=True)
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(uploads)]
    try:
        res = subprocess.run(mount, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()[:200]}")
    try:
        url, proc = _launch(redis_server, tmp_path / "artifacts", tmp_path, 13)
        try:
            yield url, uploads
        finally:
            proc.stop()
    finally:
        subprocess.run(["umount", str(uploads)], capture_output=True, timeout=30)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _507(r: httpx.Response, kept: int) -> None:
    assert r.status_code == 507, r.text
    assert r.headers["Tus-Resumable"] == "1.0.0"
    err = r.json()["error"]
    assert err["code"] == "insufficient_storage"
    assert err["details"]["offset"] == kept and f"kept {kept} bytes" in err["message"]


def test_file_size_limit_is_507_and_the_upload_resumes(fsize_api):
    url, proc, art = fsize_api
    data = os.urandom(3_000_000)
    with httpx.Client(base_url=url, timeout=60) as c:
        loc = create(c, len(data))
        path = art / "uploads" / loc.rsplit("/", 1)[1]
        _507(patch(c, loc, 0, data), FSIZE)
        assert head_offset(c, loc) == FSIZE  # the limit, set by hand above
        assert path.read_bytes() == data[:FSIZE]
        _507(patch(c, loc, FSIZE, data[FSIZE:]), FSIZE)  # still no room: nothing changes
        assert head_offset(c, loc) == FSIZE

        # a checksummed body that cannot be stored whole keeps none of its bytes
        other = create(c, len(data))
        other_path = art / "uploads" / other.rsplit("/", 1)[1]
        assert patch(c, other, 0, data[:1000]).status_code == 204
        digest = "sha1 " + base64.b64encode(hashlib.sha1(data[1000:]).digest()).decode()
        _507(patch(c, other, 1000, data[1000:], **{"Upload-Checksum": digest}), 1000)
        assert head_offset(c, other) == 1000 and other_path.stat().st_size == 1000

        # room again (the limit lifted in the running process): resume from HEAD's offset
        inf = resource.RLIM_INFINITY
        assert proc.proc is not None
        resource.prlimit(proc.proc.pid, resource.RLIMIT_FSIZE, (inf, inf))
        r = patch(c, loc, head_offset(c, loc), data[FSIZE:])
        assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
        assert _sha(path.read_bytes()) == _sha(data)
        r = patch(c, other, head_offset(c, other), data[1000:], **{"Upload-Checksum": digest})
        assert r.status_code == 204
        assert _sha(other_path.read_bytes()) == _sha(data)


def test_full_tmpfs_is_507_and_the_upload_resumes_once_space_is_freed(tmpfs_api):
    url, uploads = tmpfs_api
    filler = uploads / "filler"
    filler.write_bytes(b"\0" * (640 * 1024))  # of 1 MiB: ~384 KiB left for the upload
    data = os.urandom(700_000)
    with httpx.Client(base_url=url, timeout=60) as c:
        loc = create(c, len(data))
        path = uploads / loc.rsplit("/", 1)[1]
        r = patch(c, loc, 0, data)
        kept = path.stat().st_size
        assert 0 < kept < len(data)
        _507(r, kept)
        assert head_offset(c, loc) == kept
        assert path.read_bytes() == data[:kept]
        filler.unlink()  # the operator frees space
        r = patch(c, loc, head_offset(c, loc), data[kept:])
        assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
        assert _sha(path.read_bytes()) == _sha(data)
