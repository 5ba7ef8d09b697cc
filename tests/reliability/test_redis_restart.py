"""Redis is killed (-9) and restarted from its AOF; broker messages go missing."""

from __future__ import annotations

import time

import httpx
import pytest
from rel_helpers import (
    assert_attempts_never_overlap,
    assert_curves_continuous,
    at_epoch,
    spec,
    statuses,
    submit,
    terminal,
)

pytestmark = [pytest.mark.slow, pytest.mark.service]


def test_redis_kill9_and_restart_loses_no_job(rel, reference):
    r = rel.redis.client()
    rel.add_worker()
    with rel.client() as c:
        fin = submit(c, spec(epochs=2))
        assert terminal(c, fin)["status"] == "succeeded"
        run = submit(c, spec())
        at_epoch(c, run, 2)
        queued = submit(c, spec(epochs=3))
        assert c.get(f"/jobs/{queued}").json()["status"] == "queued"

        rel.redis.kill()
        down = time.monotonic()
        t0 = time.monotonic()
        g = c.get(f"/jobs/{run}")
        p = c.post("/jobs", json=spec(epochs=2))
        answered = time.monotonic() - t0
        assert g.status_code == 503 and p.status_code == 503, (g.text, p.text)
        assert g.json()["error"]["code"] == "redis_unavailable"
        assert "Redis" in g.json()["error"]["message"]
        assert answered < 5, f"503s took {answered:.2f}s"
        time.sleep(2)  # the worker keeps training through the outage
        rel.redis.start()
        outage = time.monotonic() - down

        assert c.get(f"/jobs/{fin}").json()["status"] == "succeeded"
        assert c.get(f"/jobs/{queued}").json()["status"] in ("queued", "running")
        done = terminal(c, run)
        assert done["status"] == "succeeded", done
        assert_curves_continuous(c, done)
        assert_attempts_never_overlap(r, run)
        for k in ("val_acc", "val_loss"):
            assert done["metrics"][k] == reference["job"]["metrics"][k]
        q = terminal(c, queued)
        assert q["status"] == "succeeded", q
        assert_curves_continuous(c, q)
        print(f"redis outage {outage:.1f}s: running job attempts={done['attempts']}")


def test_reconciler_republishes_a_job_whose_message_was_lost(rel):
    r = rel.redis.client()
    with rel.client() as c:
        jid = submit(c, spec(epochs=2))
        assert r.delete("cpu") == 1  # the broker message is gone; the record says queued
        w = rel.add_worker()
        t0 = time.monotonic()
        done = terminal(c, jid, 60)
        took = time.monotonic() - t0
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 1
        assert "re-published" in w.log.read_text()
        print(f"lost message: job re-published and done {took:.1f}s after a worker started")


def test_a_cancelled_queued_job_never_starts_across_restarts(rel):
    r = rel.redis.client()
    with rel.client() as c:
        jid = submit(c, spec(epochs=2))  # no worker yet: it waits in the queue
        assert c.post(f"/jobs/{jid}/cancel").status_code == 202
        rel.redis.kill()
        rel.redis.start()
        w = rel.add_worker()
        w.stop(10)  # a worker restart too
        rel.workers.remove(w)
        rel.add_worker()
        probe = submit(c, spec(epochs=2))
        assert terminal(c, probe)["status"] == "succeeded"
        j = c.get(f"/jobs/{jid}").json()
        assert j["status"] == "cancelled" and j["attempts"] == 0 and j["started_at"] is None, j
        assert statuses(r, jid) == ["queued", "cancelled"]


def test_api_answers_503_not_500_or_hang_while_redis_is_down(rel):
    rel.redis.kill()
    try:
        with httpx.Client(base_url=rel.api_url, timeout=10) as c:
            for method, path in (("GET", "/jobs"), ("GET", "/jobs/jx"), ("GET", "/readyz")):
                t0 = time.monotonic()
                resp = c.request(method, path)
                assert resp.status_code == 503, (path, resp.status_code, resp.text)
                assert time.monotonic() - t0 < 5
    finally:
        rel.redis.start()
    with rel.client() as c:
        assert c.get("/jobs").status_code == 200
