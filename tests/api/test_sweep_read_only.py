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
