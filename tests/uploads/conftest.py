"""Fixtures of the tus upload tests: APIs under uvicorn on private Redis databases.

- `tus_api`: the loopback default (auth off, tenant "default"), uploads up to 512 MiB, db 8.
- `tus_secure_api`: TRICKLAB_AUTH=required, keys made by the real `tricklab keys`, db 4.
- `apis`, `clients`: two API processes of one deployment, per module (uploads/racing.py).
No worker: uploads need none.
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
from support import ROOT, Proc, launch_api
from uploads.racing import Apis, clients_of, two_apis
from uploads.tus_http import MAX_TOTAL, MAX_UPLOAD

from tricklab.server.connection import connect
from tricklab.server.store import Store


@dataclass
class TusApi:
    url: str
    redis_url: str
    artifact_dir: Path
    env: dict[str, str]
    proc: Proc

    def client(self, key: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, timeout=60, headers=headers, **kw)

    def store(self) -> Store:
        return Store(connect(self.redis_url), "tl")

    def file(self, upload_id: str) -> Path:
        return self.artifact_dir / "uploads" / upload_id

    def make_key(self, name: str) -> str:
        """`tricklab keys create NAME --json` through the real entry point; the secret."""
        res = subprocess.run(
            [sys.executable, "-c", "import sys; from tricklab.client.cli import main; sys.exit(main())",
             "keys", "create", name, "--json"],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)["key"]


@pytest.fixture(scope="session")
def tus_api(redis_server, tmp_path_factory) -> Iterator[TusApi]:
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        8,  # 0 service, 1 api, 4 tus auth, 5/6 security, 7 dashboard auth, 9-15 others
        "tus-api",
        TRICKLAB_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
        TRICKLAB_MAX_DATASET_BYTES_TOTAL=str(MAX_TOTAL),
    )
    yield TusApi(p.url, p.redis_url, p.artifact_dir, p.env, p.proc)
    p.proc.stop()


@pytest.fixture(scope="session")
def tus_secure_api(redis_server, tmp_path_factory) -> Iterator[TusApi]:
    p = launch_api(
        redis_server.port, tmp_path_factory, 4, "tus-secure-api", TRICKLAB_AUTH="required"
    )
    yield TusApi(p.url, p.redis_url, p.artifact_dir, p.env, p.proc)
    p.proc.stop()


@pytest.fixture
def client(tus_api: TusApi) -> Iterator[httpx.Client]:
    with tus_api.client() as c:
        yield c


@pytest.fixture(scope="module")
def apis(redis_server, tmp_path_factory) -> Iterator[Apis]:
    yield from two_apis(redis_server, tmp_path_factory)


@pytest.fixture
def clients(apis) -> Iterator[list[httpx.Client]]:
    """One client per API process; every upload and dataset is deleted after the test."""
    yield from clients_of(apis)
