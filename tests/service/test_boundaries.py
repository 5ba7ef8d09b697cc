"""Process boundaries: the worker parent pre-imports torch, the API never does."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.service


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_worker_imported_torch_and_api_did_not(service):
    worker_pid = service.workers[0].proc.pid
    assert "libtorch" in _maps(worker_pid), "the worker parent should pre-import torch"
    assert "libtorch" not in _maps(service.api.proc.pid), "the API must not import torch"


def test_readyz_sees_the_worker_heartbeat(service):
    with service.client() as c:
        r = c.get("/readyz")
        assert r.status_code == 200, r.text
