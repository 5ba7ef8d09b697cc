"""Dataset-ingest fixtures: APIs under uvicorn on private Redis databases, no worker.

- `ds_api`: an 8 MiB upload limit, db 14.
- `quota_api`: a 40 KB storage quota (max_dataset_bytes_total), db 10.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import Proc, launch_api

MAX_UPLOAD = 8 * 2**20
QUOTA = 40_000


@dataclass
class Api:
    url: str
    artifact_dir: Path
    proc: Proc

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kw)

    def stored(self) -> set[str]:
        """Everything in the datasets dir: staging files and dirs included."""
        d = self.artifact_dir / "datasets"
        return set(os.listdir(d)) if d.exists() else set()


@pytest.fixture(scope="session")
def ds_api(redis_server, tmp_path_factory) -> Iterator[Api]:
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        14,
        "datasets-api",
        TRICKLAB_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
        TRICKLAB_MAX_ACTIVE_JOBS="100000",
    )
    yield Api(p.url, p.artifact_dir, p.proc)
    p.proc.stop()


@pytest.fixture(scope="session")
def quota_api(redis_server, tmp_path_factory) -> Iterator[Api]:
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        10,
        "datasets-quota-api",
        TRICKLAB_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
        TRICKLAB_MAX_DATASET_BYTES_TOTAL=str(QUOTA),
    )
    yield Api(p.url, p.artifact_dir, p.proc)
    p.proc.stop()


@pytest.fixture
def client(ds_api: Api) -> Iterator[httpx.Client]:
    with ds_api.client() as c:
        yield c
