"""GET /sweeps/{id} changes nothing: starting pending children is the worker's business.

Against the API-only fixture (real Redis and HTTP, no worker): nothing but the API could
start the pending child here, so a GET that did would show at once.
"""

from __future__ import annotations

import pytest

from tests.api.conftest import EXAMPLE

pytestmark = pytest.mark.service


def test_reading_a_sweep_starts_no_pending_child(api, client):
    body = {
        "name": "read only",
        "base": {**EXAMPLE, "training": {**EXAMPLE["training"], "device": "cpu"}},
        "grid": {"regularization.label_smoothing": [0.0, 0.1]},
        "seeds": 1,
        "max_concurrent": 1,
    }
    r = client.post("/sweeps", json=body)
    assert r.status_code == 201, r.text
    sweep = r.json()
    assert sweep["counts"]["queued"] == 1 and sweep["counts"]["pending"] == 1, sweep["counts"]
    first, second = (v["jobs"][0]["job_id"] for v in sweep["variants"])

    # The first child ends as a worker would end it, but no worker runs its follow-ups.
    attempt = api.run_job(first)
    assert api.store.finish(first, attempt, "succeeded")

    for _ in range(3):
        r = client.get(f"/sweeps/{sweep['id']}")
        assert r.status_code == 200, r.text
        counts = r.json()["counts"]
        assert counts["succeeded"] == 1 and counts["pending"] == 1, counts
    assert client.get(f"/jobs/{second}").status_code == 404  # still no record: not started
    assert client.get("/sweeps").json()["data"][0]["counts"]["pending"] == 1


def test_sweep_children_list_newest_first_in_a_stable_order(api, client):
    """Children's ids follow their start order, so GET /jobs (newest first) lists the
    last child first, every time (random id tails used to shuffle them)."""
    body = {
        "name": "ordered",
        "base": {**EXAMPLE, "training": {**EXAMPLE["training"], "device": "cpu"}},
        "grid": {"optimizer.lr": [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]},
        "seeds": 2,
        "max_concurrent": 12,
    }
    r = client.post("/sweeps", json=body)
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]
    started = [c["job_id"] for c in _children(api, sweep_id)]  # in start order
    listed = [j["id"] for j in client.get("/jobs", params={"limit": 200}).json()["data"]]
    mine = [i for i in listed if i in set(started)]
    assert mine == started[::-1]
    for i in started:
        assert client.post(f"/jobs/{i}/cancel").status_code == 202


def _children(api, sweep_id: str) -> list[dict]:
    import json

    return json.loads(api.store.r.hget(api.store.keys.sweep(sweep_id), "children"))
