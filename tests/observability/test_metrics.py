"""GET /metrics against the real service: Redis, a Celery worker and the API over HTTP."""

from __future__ import annotations

import httpx
import pytest
from support import long_spec, small_spec, submit, wait_for, wait_running, wait_status
from support.promtext import parse, value

pytestmark = [pytest.mark.service, pytest.mark.slow]


def metrics(c: httpx.Client):
    r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def test_metrics_is_prometheus_text_with_every_family(service):
    with service.client() as c:
        types, samples = metrics(c)
    assert types["tricklab_jobs"] == "gauge"
    assert types["tricklab_job_duration_seconds"] == "histogram"
    assert types["tricklab_http_request_duration_seconds"] == "histogram"
    assert value(samples, "tricklab_redis_up") == 1
    assert value(samples, "tricklab_workers_alive") >= 1
    names = {n for n, _, _ in samples}
    for s in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert any(n == "tricklab_jobs" and lb == {"status": s} for n, lb, _ in samples), s
    for q in ("cpu", "gpu"):
        assert any(n == "tricklab_queue_depth" and lb == {"queue": q} for n, lb, _ in samples)
    assert "tricklab_training_samples_per_second" in names


def test_job_counts_queue_depth_throughput_and_durations_follow_the_jobs(service, cleanup):
    with service.client() as c:
        _, m0 = metrics(c)
        # A long job occupies the single worker; the second one waits in the broker.
        bid = cleanup.job(submit(c, long_spec()))["id"]
        wait_running(c, bid)
        qid = cleanup.job(submit(c, small_spec()))["id"]

        _, m1 = metrics(c)
        for s, d in (("queued", 1), ("running", 1), ("cancelled", 0)):
            got = value(m1, "tricklab_jobs", status=s) - value(m0, "tricklab_jobs", status=s)
            assert got == d, (s, got)
        assert value(m1, "tricklab_queue_depth", queue="cpu") >= 1
        # The running job reports samples/s at its log points.
        wait_for(
            lambda: value(metrics(c)[1], "tricklab_training_samples_per_second", queue="cpu") > 0,
            60,
            what="a throughput",
        )

        assert c.post(f"/jobs/{qid}/cancel").status_code == 202
        _, m2 = metrics(c)
        assert value(m2, "tricklab_jobs", status="queued") == value(
            m0, "tricklab_jobs", status="queued"
        )
        assert value(m2, "tricklab_jobs", status="cancelled") == (
            value(m0, "tricklab_jobs", status="cancelled") + 1
        )
        assert value(m2, "tricklab_jobs", status="running") == (
            value(m0, "tricklab_jobs", status="running") + 1
        )

        # The running one, cancelled, is finished by its worker: one duration observation.
        assert c.post(f"/jobs/{bid}/cancel").status_code == 202
        wait_status(c, bid, "cancelled")
        _, m3 = metrics(c)
        name = "tricklab_job_duration_seconds_count"
        assert value(m3, name, status="cancelled") == value(m0, name, status="cancelled") + 1
        assert value(m3, "tricklab_jobs", status="running") == value(
            m0, "tricklab_jobs", status="running"
        )
        assert value(m3, "tricklab_training_samples_per_second", queue="cpu") == 0


def test_request_latency_histogram_counts_requests_by_route_template(service):
    name = "tricklab_http_request_duration_seconds_count"
    with service.client() as c:
        _, before = metrics(c)
        for _ in range(3):
            c.get("/jobs/j0000000000000000000a")  # 404: a well-formed id that does not exist
        c.get("/healthz")
        _, after = metrics(c)
    route = {"route": "/jobs/{job_id}", "method": "GET", "status": "4xx"}
    assert value(after, name, **route) == value(before, name, **route) + 3
    health = {"route": "/healthz", "method": "GET", "status": "2xx"}
    assert value(after, name, **health) == value(before, name, **health) + 1
    # Raw paths never become labels.
    assert not any("j0000000000000000000a" in str(lb) for _, lb, _ in after)
