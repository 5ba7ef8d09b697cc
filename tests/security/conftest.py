"""Security fixtures: APIs under uvicorn on private Redis databases, keys made by the real command.

- `secure_api`: TRICKLAB_AUTH=required (as when bound beyond loopback), db 5.
- `open_api`: the loopback default (auth off, tenant "default"), small upload limit, db 6.
No worker: jobs stay queued, which is all these tests need.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
from support import ROOT, Proc, launch_api

from tricklab.server.connection import connect

MAX_UPLOAD = 200_000


@dataclass
class Api:
    url: str
    redis_url: str
    artifact_dir: Path
    env: dict[str, str]
    proc: Proc

    def client(self, key: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, timeout=30, headers=headers, **kw)

    def redis(self) -> redis_lib.Redis:
        return connect(self.redis_url)

    def keys_cmd(self, *args: str) -> subprocess.CompletedProcess:
        """`tricklab keys ...` through the real console entry point, as a subprocess."""
        return subprocess.run(
            [sys.executable, "-c", "import sys; from tricklab.client.cli import main; sys.exit(main())",
             "keys", *args],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def make_key(self, name: str, *args: str) -> dict:
        res = self.keys_cmd("create", name, "--json", *args)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)


def launch(redis_server, tmp_path_factory, db: int, name: str, **extra: str) -> Api:
    p = launch_api(redis_server.port, tmp_path_factory, db, name, **extra)
    return Api(p.url, p.redis_url, p.artifact_dir, p.env, p.proc)


@pytest.fixture(scope="session")
def secure_api(redis_server, tmp_path_factory) -> Iterator[Api]:
    api = launch(
        redis_server,
        tmp_path_factory,
        5,
        "secure-api",
        TRICKLAB_AUTH="required",
        TRICKLAB_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
    )
    yield api
    api.proc.stop()


@pytest.fixture(scope="session")
def open_api(redis_server, tmp_path_factory) -> Iterator[Api]:
    api = launch(
        redis_server,
        tmp_path_factory,
        6,
        "open-api",
        TRICKLAB_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
        TRICKLAB_MAX_BODY_BYTES=str(64 * 1024),
        TRICKLAB_MAX_ACTIVE_JOBS="100000",
    )
    yield api
    api.proc.stop()
