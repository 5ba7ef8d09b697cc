"""JSON log lines from API and worker, and GET /jobs/{id}/logs after a real training job."""

from __future__ import annotations

import json

import pytest
from support import small_spec, submit, wait_done, wait_for

pytestmark = [pytest.mark.service, pytest.mark.slow]

KEYS = {"ts", "level", "logger", "msg", "component"}


def json_lines(path) -> list[dict]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))  # every line that looks like JSON must be JSON
    return out


def test_job_logs_hold_the_epoch_lines_and_page_by_cursor(service):
    with service.client() as c:
        jid = submit(c, small_spec(epochs=3))["id"]
        done = wait_done(c, jid)
        assert done["status"] == "succeeded", done

        r = c.get(f"/jobs/{jid}/logs")
        assert r.status_code == 200, r.text
        body = r.json()
        lines = body["lines"]
        epochs = [ln for ln in lines if ln["msg"].startswith("epoch ")]
        assert [ln["msg"].split()[1] for ln in epochs] == ["1/3", "2/3", "3/3"]
        assert all("val_acc" in ln["msg"] for ln in epochs)
        assert all(ln["level"] == "INFO" and ln["attempt"] == 1 for ln in epochs)
        assert any("attempt 1" in ln["msg"] for ln in lines)
        assert any("succeeded" in ln["msg"] for ln in lines)
        assert {"ts", "level", "msg", "attempt"} <= set(lines[0])
        assert body["next"] == lines[-1]["id"]

        # Paging: limit and since= walk the same lines in order, then nothing is left.
        first = c.get(f"/jobs/{jid}/logs", params={"limit": 2}).json()
        assert [ln["id"] for ln in first["lines"]] == [ln["id"] for ln in lines[:2]]
        rest = c.get(f"/jobs/{jid}/logs", params={"since": first["next"]}).json()
        assert [ln["id"] for ln in rest["lines"]] == [ln["id"] for ln in lines[2:]]
        empty = c.get(f"/jobs/{jid}/logs", params={"since": body["next"]}).json()
        assert empty == {"lines": [], "next": body["next"]}

        assert c.get(f"/jobs/{jid}/logs", params={"since": "nope"}).status_code == 422


def test_job_logs_404_for_an_unknown_job(service):
    with service.client() as c:
        r = c.get("/jobs/j0000000000000000000b/logs")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_api_and_worker_write_json_lines_with_job_context(service):
    with service.client() as c:
        jid = submit(c, small_spec(epochs=1))["id"]
        wait_done(c, jid)
        c.get(f"/jobs/{jid}")

    def api_line():
        for rec in json_lines(service.logs / "api.log"):
            if rec.get("job_id") == jid and rec.get("route") == "/jobs/{job_id}":
                return rec
        return None

    rec = wait_for(api_line, 30, 0.1, what="the API's access line for the job")
    assert KEYS <= set(rec)
    assert rec["component"] == "api" and rec["logger"] == "tricklab.api.access"
    assert rec["status"] == 200 and rec["method"] == "GET"

    worker_recs = [r for r in json_lines(service.workers[0].log) if r.get("job_id") == jid]
    assert worker_recs, "the worker logged nothing for the job"
    assert all(KEYS <= set(r) and r["component"] == "worker" for r in worker_recs)
    epoch = next(r for r in worker_recs if r["msg"].startswith("epoch 1/1"))
    assert epoch["attempt"] == 1 and epoch["worker"].startswith("w1@")
