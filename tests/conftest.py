"""Shared fixtures: real processes over real connections.

- `redis_server`: a private redis-server on a free port (AOF on, data in a tmp dir),
  so tests can kill and restart it without touching the machine's Redis.
- `service`: that Redis + one real Celery worker process + the API under uvicorn,
  reached over HTTP with httpx. No eager mode, no fakes.
- `cleanup`: jobs and sweeps to cancel after the test, so none keeps that one worker busy.

The helpers live in the tests/support package (on pytest's pythonpath: `from support import ...`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import Cleanup, RedisServer, Service, free_port, service_env, start_api, wait_for


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    srv = RedisServer(port=free_port(), dir=tmp_path_factory.mktemp("redis"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def service(redis_server, tmp_path_factory) -> Iterator[Service]:
    """One API and one CPU worker for the whole session (tests use their own jobs)."""
    art = tmp_path_factory.mktemp("artifacts")
    logs = Path(os.environ.get("TRICKLAB_TEST_LOGS", tmp_path_factory.mktemp("logs")))
    logs.mkdir(parents=True, exist_ok=True)
    # One torch thread per training process, as in the reliability cluster: on a shared
    # 2-core machine two intra-op threads spin against the API and the test process, and
    # steps were measured 5-20x slower (and as uneven) than with one.
    env = service_env(redis_server.url, art, OMP_NUM_THREADS="1")
    port = free_port()
    api = start_api(env, logs / "api.log", port)
    svc = Service(redis_server, art, f"http://127.0.0.1:{port}", env, logs, api)
    svc.add_worker("w1")
    try:
        wait_for(
            lambda: httpx.get(f"{svc.api_url}/healthz", timeout=2).status_code == 200,
            60,
            what="the API",
        )
        wait_for(
            lambda: httpx.get(f"{svc.api_url}/readyz", timeout=2).status_code == 200,
            90,
            what="a worker (readyz)",
        )
    except TimeoutError:
        print("API log:\n", api.tail(), "\nworker log:\n", svc.workers[0].tail())
        raise
    yield svc
    for w in svc.workers:
        w.stop()
    api.stop()


@pytest.fixture
def cleanup(service) -> Iterator[Cleanup]:
    """Register a job (`cleanup.job(submit(...))`) or a sweep (`cleanup.sweep(...)`): after
    the test, pass or fail, each is cancelled unless it has finished, and waited for."""
    c = Cleanup(service.api_url)
    yield c
    c.close()
