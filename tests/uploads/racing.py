"""Racing requests against two API processes of one deployment (tests/uploads): the
processes share one Redis, under a key prefix of their own, and one artifact directory."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from support import Proc, free_port, service_env, start_api, wait_for
from uploads.tus_http import TUS

from tricklab.server.connection import connect
from tricklab.server.store import Store

MiB = 2**20
QUOTA = 8 * MiB  # max_dataset_bytes_total and max_upload_bytes of these APIs
DB = 8  # tus_api's database, under a key prefix of our own: nothing is flushed


@dataclass
class Apis:
    urls: list[str]
    procs: list[Proc]
    env: dict[str, str]
    prefix: str
    artifact_dir: Path
    logs: Path

    def store(self) -> Store:
        return Store(connect(self.env["REDIS_URL"]), self.prefix)

    def start(self, name: str) -> tuple[str, Proc]:
        """One more API process on the same Redis keys and files."""
        port = free_port()
        proc = start_api(self.env, self.logs / f"{name}.log", port)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60)
        except TimeoutError:
            print(proc.tail())
            raise
        return url, proc


def two_apis(redis_server, tmp_path_factory) -> Iterator[Apis]:
    prefix = "tlq" + secrets.token_hex(4)
    art = tmp_path_factory.mktemp("quota-race-artifacts")
    env = service_env(
        f"redis://127.0.0.1:{redis_server.port}/{DB}",
        art,
        TRICKLAB_KEY_PREFIX=prefix,
        TRICKLAB_MAX_UPLOAD_BYTES=str(QUOTA),
        TRICKLAB_MAX_DATASET_BYTES_TOTAL=str(QUOTA),
    )
    a = Apis([], [], env, prefix, art, tmp_path_factory.mktemp("quota-race-logs"))
    for i in range(2):
        url, proc = a.start(f"quota-api-{i}")
        a.urls.append(url)
        a.procs.append(proc)
    yield a
    for p in a.procs:
        p.stop()
    r = a.store().r
    for k in r.scan_iter(f"{prefix}:*"):
        r.delete(k)


def clients_of(apis: Apis) -> Iterator[list[httpx.Client]]:
    """One client per API process; every upload is deleted after the test."""
    cs = [httpx.Client(base_url=u, timeout=60) for u in apis.urls]
    yield cs
    store = apis.store()
    for uid in store.r.smembers(store.keys.uploads("default")):
        cs[0].delete(f"/uploads/{uid}", headers=TUS)
    for ds in cs[0].get("/datasets").json().get("data", []):
        if not ds.get("builtin"):
            cs[0].delete(f"/datasets/{ds['id']}")
    for c in cs:
        c.close()


def at_once(n: int, call: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """n calls started together (a barrier), each in its own thread."""
    gate = threading.Barrier(n)

    def go(i: int) -> httpx.Response:
        gate.wait()
        return call(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def post_upload(c: httpx.Client, length: int) -> httpx.Response:
    return c.post("/uploads", headers={**TUS, "Upload-Length": str(length)})


def held_by_uploads(apis: Apis) -> int:
    """What the tenant's uploads hold now, by the tus rules, read from Redis and the disk:
    Upload-Length where known, else the bytes in the file."""
    store = apis.store()
    total = 0
    for uid in store.r.smembers(store.keys.uploads("default")):
        length = store.r.hget(store.keys.upload(uid), "length")
        path = apis.artifact_dir / "uploads" / str(uid)
        total += int(length) if length else (path.stat().st_size if path.exists() else 0)
    return total


def clean_uploads(clients: list[httpx.Client], apis: Apis) -> None:
    store = apis.store()
    for uid in store.r.smembers(store.keys.uploads("default")):
        assert clients[0].delete(f"/uploads/{uid}", headers=TUS).status_code == 204
