"""GET /jobs/{id}?include=attempts: each attempt (claimed when, by whom, resumed from which
step, ended how), rebuilt from the job's event stream. The job is driven through the
Store as two workers would drive it: claim, start, preempt, claim again, resume, finish."""

from __future__ import annotations

import json
import time
from datetime import datetime

from support import assert_error, locs


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _preempted_then_resumed(api, client) -> tuple[str, dict[str, float]]:
    """A job: attempt 1 on wA (fresh, preempted), attempt 2 on wB (resumed at 44, succeeded).
    Returns its id and wall-clock times taken around each step."""
    job_id = api.create_job(client)["id"]
    s = api.store
    t = {"before_claim1": time.time()}
    assert api.run_job(job_id, "wA@host") == 1
    s.emit(job_id, "start", {"device": "cpu", "resumed_from_step": None, "total_steps": 66})
    t["after_claim1"] = time.time()
    time.sleep(0.01)  # stream ids are in ms: keep the steps apart
    assert int(s.requeue(job_id, 1, "preempted")) == 1
    t["after_requeue"] = time.time()
    time.sleep(0.01)
    assert api.run_job(job_id, "wB@host") == 2
    s.emit(job_id, "start", {"device": "cpu", "resumed_from_step": 44, "total_steps": 66})
    time.sleep(0.01)
    t["before_finish"] = time.time()
    assert s.finish(job_id, 2, "succeeded")
    t["after_finish"] = time.time()
    return job_id, t


def test_two_attempts_with_worker_resume_step_and_ending(api, client):
    job_id, t = _preempted_then_resumed(api, client)
    r = client.get(f"/jobs/{job_id}", params={"include": "attempts"})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["attempts"] == 2
    first, second = job["attempt_history"]
    assert {k: first[k] for k in ("attempt", "worker", "device", "resumed_from_step", "ended")} == {
        "attempt": 1,
        "worker": "wA@host",
        "device": "cpu",
        "resumed_from_step": None,
        "ended": "preempted",
    }
    assert {k: second[k] for k in ("attempt", "worker", "resumed_from_step", "ended")} == {
        "attempt": 2,
        "worker": "wB@host",
        "resumed_from_step": 44,
        "ended": "succeeded",
    }
    # stream ids carry milliseconds: each time lies within the window of its call
    assert t["before_claim1"] - 0.002 <= _t(first["claimed_at"]) <= t["after_claim1"] + 0.002
    assert t["after_claim1"] - 0.002 <= _t(first["ended_at"]) <= t["after_requeue"] + 0.002
    assert _t(first["ended_at"]) <= _t(second["claimed_at"]) <= _t(second["ended_at"])
    assert t["before_finish"] - 0.002 <= _t(second["ended_at"]) <= t["after_finish"] + 0.002


def test_without_include_there_is_no_history(api, client):
    job_id = api.create_job(client)["id"]
    assert client.get(f"/jobs/{job_id}").json()["attempt_history"] is None
    # a queued job has no attempt yet
    assert client.get(f"/jobs/{job_id}?include=attempts").json()["attempt_history"] == []


def test_a_running_attempt_has_no_end_yet(api, client):
    job_id = api.create_job(client)["id"]
    api.run_job(job_id, "wC@host")
    (only,) = client.get(f"/jobs/{job_id}?include=attempts").json()["attempt_history"]
    assert only["worker"] == "wC@host" and only["claimed_at"] is not None
    assert only["ended"] is None and only["ended_at"] is None
    assert only["device"] is None  # no start event yet: the worker is still loading data
    api.store.finish(job_id, 1, "cancelled")


def test_attempts_whose_events_were_trimmed_keep_their_number(api, client):
    """The event stream is capped: a trimmed attempt is listed with its number only."""
    job_id, _ = _preempted_then_resumed(api, client)
    key = api.store.keys.job_events(job_id)
    r = api.store.r
    ids = [eid for eid, _ in r.xrange(key)]
    # keep only the events from attempt 2's claim on
    claim2 = next(
        eid
        for eid, f in r.xrange(key)
        if f["type"] == "status" and json.loads(f["data"]).get("worker") == "wB@host"
    )
    r.xtrim(key, minid=claim2, approximate=False)
    assert len(r.xrange(key)) < len(ids)
    first, second = client.get(f"/jobs/{job_id}?include=attempts").json()["attempt_history"]
    assert first == {
        "attempt": 1,
        "claimed_at": None,
        "worker": None,
        "device": None,
        "resumed_from_step": None,
        "ended_at": None,
        "ended": None,
    }
    assert second["worker"] == "wB@host" and second["resumed_from_step"] == 44


def test_an_unknown_include_is_a_422_naming_it(api, client):
    job_id = api.create_job(client)["id"]
    err = assert_error(client.get(f"/jobs/{job_id}?include=everything"), 422)
    assert ["query", "include"] in locs(err)
