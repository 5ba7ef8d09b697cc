"""Idempotency-Key on POST /jobs: one key, one job (201 then 200), per tenant."""

from __future__ import annotations

import threading
import uuid

import pytest
from support import assert_error, minimal_spec

SPEC = minimal_spec()  # jobs stay queued: these APIs have no worker

pytestmark = pytest.mark.service


def _count_jobs(api) -> int:
    r = api.redis()
    return sum(1 for k in r.scan_iter(match="tl:job:*", count=1000) if k.count(":") == 2)


def test_same_key_same_body_same_job(open_api):
    key = str(uuid.uuid4())
    with open_api.client() as c:
        before = _count_jobs(open_api)
        first = c.post("/jobs", json=SPEC, headers={"Idempotency-Key": key})
        assert first.status_code == 201, first.text
        # same body, keys in another order: the same request
        again = c.post(
            "/jobs",
            json={"training": SPEC["training"], "data": SPEC["data"]},
            headers={"Idempotency-Key": key},
        )
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == f"/jobs/{first.json()['id']}"
        assert _count_jobs(open_api) == before + 1
        # without a key every POST is a new job
        assert c.post("/jobs", json=SPEC).json()["id"] != first.json()["id"]


def test_same_key_different_body_is_422(open_api):
    key = str(uuid.uuid4())
    with open_api.client() as c:
        assert c.post("/jobs", json=SPEC, headers={"Idempotency-Key": key}).status_code == 201
        other = {**SPEC, "name": "something else"}
        err = assert_error(
            c.post("/jobs", json=other, headers={"Idempotency-Key": key}),
            422,
            "idempotency_key_reused",
        )
        assert "Idempotency-Key" in err["message"]


def test_failed_request_releases_the_key(open_api):
    key = str(uuid.uuid4())
    with open_api.client() as c:
        bad = {**SPEC, "data": {"dataset": "no-such-dataset"}}
        assert_error(c.post("/jobs", json=bad, headers={"Idempotency-Key": key}), 422)
        assert c.post("/jobs", json=SPEC, headers={"Idempotency-Key": key}).status_code == 201


def test_keys_are_per_tenant(secure_api):
    a = secure_api.make_key("idem-a")["key"]
    b = secure_api.make_key("idem-b")["key"]
    key = str(uuid.uuid4())
    with secure_api.client(a) as ca, secure_api.client(b) as cb:
        ja = ca.post("/jobs", json=SPEC, headers={"Idempotency-Key": key})
        jb = cb.post("/jobs", json={**SPEC, "name": "b"}, headers={"Idempotency-Key": key})
        assert ja.status_code == 201 and jb.status_code == 201, (ja.text, jb.text)
        assert ja.json()["id"] != jb.json()["id"]


def test_concurrent_duplicates_create_exactly_one_job(open_api):
    """Many threads fire the same keyed request at once: one 201, the others 409 or 200."""
    key = str(uuid.uuid4())
    before = _count_jobs(open_api)
    barrier = threading.Barrier(8)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def fire() -> None:
        with open_api.client() as c:
            barrier.wait()
            r = c.post("/jobs", json=SPEC, headers={"Idempotency-Key": key})
            with lock:
                results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(code for code, _ in results)
    assert codes.count(201) == 1, codes
    assert set(codes) <= {200, 201, 409}, results
    created = next(body["id"] for code, body in results if code == 201)
    for code, body in results:
        if code == 200:
            assert body["id"] == created
        if code == 409:
            assert body["error"]["code"] == "idempotency_in_flight"
    assert _count_jobs(open_api) == before + 1


def test_in_flight_marker_gives_409(open_api):
    """A request still in flight (its pending marker present) answers 409 to a duplicate."""
    import hashlib
    import json

    from api.idempotency import body_hash
    from tricks.spec import JobSpec

    key = str(uuid.uuid4())
    body = JobSpec.model_validate(SPEC).model_dump(mode="json")
    name = hashlib.sha256(key.encode()).hexdigest()
    r = open_api.redis()
    marker = f"tl:t:default:idem:jobs:{name}"
    r.set(marker, json.dumps({"state": "pending", "body": body_hash(body)}), ex=60)
    with open_api.client() as c:
        resp = c.post("/jobs", json=SPEC, headers={"Idempotency-Key": key})
        assert_error(resp, 409, "idempotency_in_flight")
        assert resp.headers["retry-after"] == "1"
    assert 0 < r.ttl(marker) <= 60
    r.delete(marker)
    with open_api.client() as c:
        assert c.post("/jobs", json=SPEC, headers={"Idempotency-Key": key}).status_code == 201
    # once done the key is kept for a day
    assert r.ttl(marker) > 23 * 3600


def test_sweeps_take_an_idempotency_key_too(open_api):
    from api.routes.sweeps import EXAMPLE

    key = str(uuid.uuid4())
    with open_api.client() as c:
        first = c.post("/sweeps", json=EXAMPLE, headers={"Idempotency-Key": key})
        assert first.status_code == 201, first.text
        again = c.post("/sweeps", json=EXAMPLE, headers={"Idempotency-Key": key})
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first.json()["id"]
        other = {**EXAMPLE, "name": "another"}
        assert_error(
            c.post("/sweeps", json=other, headers={"Idempotency-Key": key}),
            422,
            "idempotency_key_reused",
        )
        # a failed request releases its key
        key2 = str(uuid.uuid4())
        bad = {**EXAMPLE, "base": {**EXAMPLE["base"], "data": {"dataset": "nope"}}}
        assert_error(c.post("/sweeps", json=bad, headers={"Idempotency-Key": key2}), 422)
        assert c.post("/sweeps", json=EXAMPLE, headers={"Idempotency-Key": key2}).status_code == 201
