"""Upload parsing runs on the API's bounded heavy pool (api/heavy.py), not the shared one.

A private API with a pool of one thread and one waiting place (heavy_per_tenant 3, so
the pool, not the tenant limit, is what fills). A slow schedule preview takes the
thread; an upload then waits for it (it finishes after the preview), a second upload
finds the pool full and gets 503 `busy` at once and leaves nothing behind, and
/healthz answers meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from support import assert_error, launch_api

from tests.datasets.conftest import Api
from tests.datasets.files import upload

# 300M steps of a walked schedule: several seconds on the one pool thread (50M took ~1 s)
SLOW = {
    "lr": 0.1,
    "epochs": 1000,
    "steps_per_epoch": 300_000,
    "max_points": 100,
    "schedule": {"decay": {"kind": "cosine_restarts", "t0_epochs": 3}},
}
CSV = ("a,b,label\n" + "".join(f"{i},{i * 0.5},{i % 2}\n" for i in range(40))).encode()


@pytest.fixture(scope="module")
def pool_api(redis_server, tmp_path_factory) -> Iterator[Api]:
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        13,
        "datasets-pool-api",
        TRICKLAB_MAX_TOTAL_STEPS="300000000",
        TRICKLAB_HEAVY_WORKERS="1",
        TRICKLAB_HEAVY_QUEUE="1",
        TRICKLAB_HEAVY_PER_TENANT="3",
        TRICKLAB_RATE_LIMIT_PER_S="1000",
        TRICKLAB_RATE_LIMIT_BURST="1000",
    )
    yield Api(p.url, p.artifact_dir, p.proc)
    p.proc.stop()


def in_thread(fn, out: dict, name: str) -> threading.Thread:
    def go() -> None:
        r = fn()
        out[name] = (r, time.monotonic())

    t = threading.Thread(target=go)
    t.start()
    return t


def test_uploads_wait_on_the_heavy_pool_and_a_full_pool_is_503(pool_api):
    with pool_api.client() as c:
        before = pool_api.stored()
        out: dict = {}
        t1 = in_thread(lambda: c.post("/schedules/preview", json=SLOW), out, "preview")
        time.sleep(0.5)
        assert "preview" not in out, "the slow preview finished too soon to test the pool"
        t2 = in_thread(lambda: upload(c, "queued.csv", CSV), out, "upload")
        time.sleep(0.5)
        assert "upload" not in out, "the upload did not wait for the pool"
        r = upload(c, "refused.csv", CSV)
        err = assert_error(r, 503, "busy")
        assert r.headers["retry-after"] == "1" and "heavy_queue" in err["message"], err
        t0 = time.monotonic()
        assert httpx.get(f"{pool_api.url}/healthz", timeout=30).status_code == 200
        assert time.monotonic() - t0 < 2.0
        t1.join(120)
        t2.join(120)
        assert out["preview"][0].status_code == 200, out["preview"][0].text
        assert out["upload"][0].status_code == 201, out["upload"][0].text
        assert out["upload"][1] >= out["preview"][1]  # it ran after the preview
        ds = out["upload"][0].json()
        names = [d["name"] for d in c.get("/datasets").json()["data"] if not d["builtin"]]
        assert names == ["queued.csv"]
        assert pool_api.stored() == before | {ds["id"]}  # no staging file of the refused one
