"""The error shape everywhere, body limits, health and readiness, and the torch boundary."""

from __future__ import annotations

import subprocess
import sys

import httpx
from support import ROOT, assert_error, free_port, minimal_spec, service_env, start_api, wait_for


def test_unknown_route_and_method_use_the_error_shape(client):
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.delete("/healthz"), 405, "method_not_allowed")
    assert_error(client.put("/jobs"), 405, "method_not_allowed")


def test_json_body_over_the_limit_is_413(client):
    body = {**minimal_spec(), "name": "x" * 100_000}
    err = assert_error(client.post("/jobs", json=body), 413, "payload_too_large")
    assert "limit" in err["message"]


def test_healthz_needs_nothing(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_is_503_without_a_worker_and_200_with_one(api, client):
    err = assert_error(client.get("/readyz"), 503, "no_workers")
    assert "worker" in err["message"]
    api.store.workers.beat("ready-test@x", info={"queues": ["cpu"], "gpus": 0})
    try:
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json() == {"redis": "ok", "workers": 1}
    finally:
        api.store.workers.gone("ready-test@x")


def test_openapi_documents_examples(client):
    doc = client.get("/openapi.json").json()
    post_jobs = doc["paths"]["/jobs"]["post"]
    examples = post_jobs["requestBody"]["content"]["application/json"]["examples"]
    assert examples["digits"]["value"]["schedule"]["decay"]["kind"] == "cosine"
    preview = doc["paths"]["/schedules/preview"]["post"]["requestBody"]["content"]
    assert preview["application/json"]["examples"]
    assert client.get("/docs").status_code == 200


def test_the_api_process_never_imports_torch():
    code = (
        "import sys, api.main, api.routes.jobs, api.routes.curves; "
        "bad = [m for m in ('torch', 'worker', 'tricks.data', 'tricks.train') if m in sys.modules]; "
        "assert not bad, bad"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_redis_outage_is_503_in_the_error_shape(tmp_path):
    """An API whose Redis is gone answers 503 redis_unavailable, never a 500; healthz stays up."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    port = free_port()
    proc = start_api(service_env(dead, tmp_path), tmp_path / "api.log", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60, what="API")
        with httpx.Client(base_url=url, timeout=30) as c:
            for resp in (
                c.get("/jobs"),
                c.post("/jobs", json=minimal_spec()),
                c.get("/jobs/j0000000000000000dead"),
                c.get("/datasets"),
                c.get("/readyz"),
            ):
                err = assert_error(resp, 503, "redis_unavailable")
                assert "Redis" in err["message"]
            # preview needs no Redis
            ok = c.post("/schedules/preview", json={"lr": 0.1, "epochs": 2, "steps_per_epoch": 3})
            assert ok.status_code == 200
    finally:
        proc.stop()
