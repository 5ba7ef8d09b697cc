"""API-only fixtures: a private Redis database + uvicorn, no worker.

Jobs stay queued unless a test drives them through tricklab.store.Store, the way a
worker would (claim → heartbeat → finish). Redis database 1 keeps these keys and the
Celery messages apart from the `service` fixture's worker on database 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
from support import ROOT, Proc, free_port, service_env, start_api, wait_for

from tricklab.store import Store, connect

__all__ = ["ROOT", "EXAMPLE", "assert_error", "locs"]

EXAMPLE = {"data": {"dataset": "digits"}, "training": {"epochs": 3, "batch_size": 64}}


@dataclass
class Api:
    url: str
    redis_url: str
    artifact_dir: Path
    proc: Proc
    store: Store
    max_upload_bytes: int

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)

    def bytes_redis(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.redis_url)

    def create_job(self, c: httpx.Client, **overrides) -> dict:
        r = c.post("/jobs", json={**EXAMPLE, **overrides})
        assert r.status_code == 201, r.text
        return r.json()

    def run_job(self, job_id: str, worker: str = "test-worker") -> int:
        """Claim the job as a worker would; returns the attempt number."""
        attempt, st = self.store.claim(job_id, worker, lease_s=60, max_attempts=3)
        assert attempt, st
        return attempt


@pytest.fixture(scope="session")
def api(redis_server, tmp_path_factory) -> Iterator[Api]:
    art = tmp_path_factory.mktemp("api-artifacts")
    logs = Path(os.environ.get("TRICKLAB_TEST_LOGS", tmp_path_factory.mktemp("api-logs")))
    logs.mkdir(parents=True, exist_ok=True)
    redis_url = f"redis://127.0.0.1:{redis_server.port}/1"
    max_upload = 256 * 1024
    env = service_env(
        redis_url,
        art,
        TRICKLAB_MAX_UPLOAD_BYTES=str(max_upload),
        TRICKLAB_MAX_BODY_BYTES=str(64 * 1024),
    )
    port = free_port()
    proc = start_api(env, logs / "api-only.log", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60, what="API")
    except TimeoutError:
        print("API log:\n", proc.tail())
        raise
    r = connect(redis_url)
    r.flushdb()
    yield Api(url, redis_url, art, proc, Store(r, "tl"), max_upload)
    proc.stop()


@pytest.fixture
def client(api: Api) -> Iterator[httpx.Client]:
    with api.client() as c:
        yield c


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    """The one error shape; returns the error object."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "details"}, err
    assert isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err


def locs(err: dict) -> list[list]:
    return [d["loc"] for d in err["details"]]
