"""Jobs over HTTP: submit one, stop one, and the one error shape every 4xx/5xx uses."""

from __future__ import annotations

from typing import Any

import httpx

from support.waiting import TERMINAL, get_job, wait_done


def submit(c: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    """POST /jobs; the created job (201), as the API answered it."""
    r = c.post("/jobs", json=spec)
    assert r.status_code == 201, r.text
    return r.json()


def stop_job(c: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Cancel the job unless it has finished, and wait until it has: its worker is free."""
    if get_job(c, job_id)["status"] not in TERMINAL:
        r = c.post(f"/jobs/{job_id}/cancel")
        assert r.status_code in (202, 409), r.text  # 409: it finished meanwhile
    return wait_done(c, job_id, timeout)


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    """The one error shape of DESIGN.md; returns the error object."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "details"}, err
    assert isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err


def locs(err: dict) -> list[list]:
    """The `loc` of each detail of a validation error."""
    return [d["loc"] for d in err["details"]]
