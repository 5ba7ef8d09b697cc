"""Redis is killed (-9) and restarted from its AOF; broker messages go missing."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from support import (
    assert_attempts_never_overlap,
    assert_curves_continuous,
    get_job,
    reliability_spec,
    statuses,
    submit,
    wait_done,
    wait_epoch,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.service]


def test_redis_kill9_and_restart_loses_no_job(rel, reference):
    r = rel.redis.client()
    rel.add_worker()
    with rel.client() as c:
        fin = submit(c, reliability_spec(epochs=2))["id"]
        assert wait_done(c, fin)["status"] == "succeeded"
        run_job = submit(c, reliability_spec())
        run = run_job["id"]
        wait_epoch(c, run, 2)
        queued = submit(c, reliability_spec(epochs=3))["id"]
        assert get_job(c, queued)["status"] == "queued"

        rel.redis.kill()
        down = time.monotonic()
        t0 = time.monotonic()
        g = c.get(f"/jobs/{run}")
        p = c.post("/jobs", json=reliability_spec(epochs=2))
        answered = time.monotonic() - t0
        assert g.status_code == 503 and p.status_code == 503, (g.text, p.text)
        assert g.json()["error"]["code"] == "redis_unavailable"
        assert "Redis" in g.json()["error"]["message"]
        assert answered < 5, f"503s took {answered:.2f}s"
        # The outage lasts while the worker trains two more epochs (it writes their
        # checkpoints with Redis down): measured in training, not in seconds, so the job
        # is still running when Redis comes back whatever the training speed.
        ckpts = rel.artifact_dir / "jobs" / run / "checkpoints"
        spe = run_job["plan"]["steps_per_epoch"]
        at_kill = _newest_checkpoint_step(ckpts)
        wait_for(
            lambda: _newest_checkpoint_step(ckpts) >= at_kill + 2 * spe,
            60,
            what="two epochs trained while Redis is down",
        )
        rel.redis.start()
        outage = time.monotonic() - down

        assert get_job(c, fin)["status"] == "succeeded"
        assert get_job(c, queued)["status"] in ("queued", "running")
        done = wait_done(c, run)
        assert done["status"] == "succeeded", done
        assert_curves_continuous(c, done)
        assert_attempts_never_overlap(r, run)
        for k in ("val_acc", "val_loss"):
            assert done["metrics"][k] == reference["job"]["metrics"][k]
        q = wait_done(c, queued)
        assert q["status"] == "succeeded", q
        assert_curves_continuous(c, q)
        print(f"redis outage {outage:.1f}s: running job attempts={done['attempts']}")


def _newest_checkpoint_step(ckpts: Path) -> int:
    return max((int(p.stem.split("-")[1]) for p in ckpts.glob("ckpt-*.pt")), default=-1)


def test_reconciler_republishes_a_job_whose_message_was_lost(rel):
    r = rel.redis.client()
    with rel.client() as c:
        jid = submit(c, reliability_spec(epochs=2))["id"]
        assert r.delete("cpu") == 1  # the broker message is gone; the record says queued
        w = rel.add_worker()
        t0 = time.monotonic()
        done = wait_done(c, jid, 60)
        took = time.monotonic() - t0
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 1
        assert "re-published" in w.log.read_text()
        print(f"lost message: job re-published and done {took:.1f}s after a worker started")


def test_a_cancelled_queued_job_never_starts_across_restarts(rel):
    r = rel.redis.client()
    with rel.client() as c:
        jid = submit(c, reliability_spec(epochs=2))["id"]  # no worker yet: it waits in the queue
        assert c.post(f"/jobs/{jid}/cancel").status_code == 202
        rel.redis.kill()
        rel.redis.start()
        w = rel.add_worker()
        w.stop(10)  # a worker restart too
        rel.workers.remove(w)
        rel.add_worker()
        probe = submit(c, reliability_spec(epochs=2))["id"]
        assert wait_done(c, probe)["status"] == "succeeded"
        j = get_job(c, jid)
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
