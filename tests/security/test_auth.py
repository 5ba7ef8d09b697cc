"""API keys over real HTTP: made by `tricklab keys create`, stored hashed, required, per tenant."""

from __future__ import annotations

import io

import numpy as np
import pytest
from support import assert_error, minimal_spec

SPEC = minimal_spec()  # jobs stay queued: these APIs have no worker

pytestmark = pytest.mark.service


def test_key_create_shown_once_and_stored_only_hashed(secure_api):
    res = secure_api.keys_cmd("create", "alice-cli")
    assert res.returncode == 0, res.stderr
    key = res.stdout.strip()
    assert key.startswith("tl_") and len(key) > 60
    assert "only time it is shown" in res.stderr
    key_id, secret = key.split("_")[1], key.split("_")[2]

    with secure_api.client(key) as c:
        assert c.get("/jobs").status_code == 200

    # The secret (and the whole key) appears nowhere in Redis, in any value or name.
    r = secure_api.redis()
    dump = []
    for k in r.scan_iter(count=1000):
        dump.append(k)
        t = r.type(k)
        if t == "hash":
            dump += [f"{a}={b}" for a, b in r.hgetall(k).items()]
        elif t == "string":
            dump.append(r.get(k) or "")
        elif t == "set":
            dump += list(r.smembers(k))
    blob = "\n".join(dump)
    assert secret not in blob and key not in blob
    assert key_id in blob  # looked up by id

    # list shows the key without its secret; revoke makes it useless at once
    listed = secure_api.keys_cmd("list")
    assert key_id in listed.stdout and secret not in listed.stdout
    assert secure_api.keys_cmd("revoke", key_id).returncode == 0
    with secure_api.client(key) as c:
        assert_error(c.get("/jobs"), 401, "unauthorized")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer tl_000000000000_" + "0" * 48},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "unknown", "malformed", "basic", "empty"],
)
def test_missing_or_wrong_key_is_401(secure_api, headers):
    with secure_api.client() as c:
        for method, path in [
            ("GET", "/jobs"),
            ("POST", "/jobs"),
            ("GET", "/jobs/j0123456789abcdef0123"),
            ("GET", "/datasets"),
            ("POST", "/schedules/preview"),
        ]:
            resp = c.request(method, path, headers=headers, json=SPEC)
            assert_error(resp, 401, "unauthorized")
            assert resp.headers["www-authenticate"].startswith("Bearer")


def test_wrong_secret_for_real_id_is_401(secure_api):
    key = secure_api.make_key("mallory")["key"]
    forged = key[:-4] + ("0000" if not key.endswith("0000") else "1111")
    with secure_api.client(forged) as c:
        assert_error(c.get("/jobs"), 401, "unauthorized")


def test_every_api_route_needs_a_key_but_open_ones(secure_api):
    """Walk the OpenAPI paths: all but health answer 401 without a key (no route forgotten)."""
    with secure_api.client() as c:
        schema = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
        assert c.get("/healthz").status_code == 200
        for path, ops in schema["paths"].items():
            concrete = path.replace("{job_id}", "j0123456789abcdef0123").replace(
                "{dataset_id}", "d0123456789abcdef0123"
            )
            for method in ops:
                resp = c.request(method.upper(), concrete)
                if path in ("/healthz", "/readyz"):
                    assert resp.status_code != 401, (method, path)
                else:
                    assert resp.status_code == 401, (method, path, resp.text)


def _npz(n: int = 40) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x=rng.normal(size=(n, 3)).astype(np.float32), y=np.arange(n) % 2)
    return buf.getvalue()


def test_tenants_do_not_see_each_other(secure_api):
    a = secure_api.make_key("a-key", "--tenant", "tenant-a")["key"]
    b = secure_api.make_key("b-key", "--tenant", "tenant-b")["key"]
    with secure_api.client(a) as ca, secure_api.client(b) as cb:
        ds = ca.post("/datasets", files={"file": ("a.npz", _npz(), "application/octet-stream")})
        assert ds.status_code == 201, ds.text
        ds_id = ds.json()["id"]
        job = ca.post("/jobs", json=SPEC)
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        own = ca.post("/jobs", json={"data": {"dataset": ds_id}, "training": {"batch_size": 8}})
        assert own.status_code == 201, own.text

        # B: every view of A's job and dataset is a 404, never a 403
        for path in ("", "/curves", "/lr", "/events", "/model"):
            assert_error(cb.get(f"/jobs/{job_id}{path}"), 404, "not_found")
        assert_error(cb.post(f"/jobs/{job_id}/cancel"), 404, "not_found")
        assert_error(cb.get(f"/datasets/{ds_id}"), 404, "not_found")
        assert_error(cb.delete(f"/datasets/{ds_id}"), 404, "not_found")
        err = assert_error(cb.post("/jobs", json={**SPEC, "data": {"dataset": ds_id}}), 422)
        assert err["details"][0]["loc"] == ["data", "dataset"]
        assert job_id not in [j["id"] for j in cb.get("/jobs").json()["data"]]
        assert ds_id not in [d["id"] for d in cb.get("/datasets").json()["data"]]
        # built-ins are everyone's
        assert cb.get("/datasets/digits").status_code == 200
        assert cb.post("/jobs", json=SPEC).status_code == 201

        # A still sees its own things
        assert ca.get(f"/jobs/{job_id}").status_code == 200
        assert ca.get(f"/datasets/{ds_id}").status_code == 200
        assert job_id in [j["id"] for j in ca.get("/jobs").json()["data"]]

    # A second key for the same tenant sees the same things
    a2 = secure_api.make_key("a-key-2", "--tenant", "tenant-a")["key"]
    with secure_api.client(a2) as c:
        assert c.get(f"/jobs/{job_id}").status_code == 200


def test_active_jobs_quota_is_429(secure_api):
    key = secure_api.make_key("busy", "--max-active-jobs", "2")["key"]
    with secure_api.client(key) as c:
        assert c.post("/jobs", json=SPEC).status_code == 201
        ids = [c.post("/jobs", json=SPEC).json()["id"]]
        err = assert_error(c.post("/jobs", json=SPEC), 429, "quota_exceeded")
        assert err["details"]["limit"] == "max_active_jobs" and "max_active_jobs" in err["message"]
        # cancelling one frees a slot
        assert c.post(f"/jobs/{ids[0]}/cancel").status_code == 202
        assert c.post("/jobs", json=SPEC).status_code == 201


def test_active_jobs_quota_holds_under_concurrent_requests(secure_api):
    """The count and the create are one Redis script: racing requests cannot all slip
    under the limit (a read-then-write check lets several through)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    key = secure_api.make_key("racer", "--max-active-jobs", "3")["key"]

    ready = threading.Barrier(12)

    def post(_: int) -> int:
        with secure_api.client(key) as c:
            c.get("/healthz")  # connected before the race starts
            ready.wait(10)
            return c.post("/jobs", json=SPEC).status_code

    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(post, range(12)))
    assert sorted(codes) == [201] * 3 + [429] * 9, codes
    with secure_api.client(key) as c:
        assert len(c.get("/jobs", params={"status": "queued"}).json()["data"]) == 3


def test_training_samples_quota_names_epochs(secure_api):
    # digits has 1437 training samples at val_fraction 0.2; 10 epochs = 14370 samples
    key = secure_api.make_key("small", "--max-train-samples", "10000")["key"]
    with secure_api.client(key) as c:
        spec = {**SPEC, "training": {"epochs": 10}}
        err = assert_error(c.post("/jobs", json=spec), 422, "quota_exceeded")
        assert err["details"][0]["loc"] == ["training", "epochs"]
        assert "max_train_samples" in err["message"]
        assert c.post("/jobs", json={**SPEC, "training": {"epochs": 5}}).status_code == 201


def test_upload_limits_per_key(secure_api):
    key = secure_api.make_key("uploader", "--max-upload-bytes", "2000")["key"]
    with secure_api.client(key) as c:
        big = _npz(200)
        assert len(big) > 2000
        err = assert_error(
            c.post("/datasets", files={"file": ("big.npz", big, "application/octet-stream")}),
            413,
            "payload_too_large",
        )
        assert err["details"]["limit"] == "max_upload_bytes"

    small = _npz(40)
    stored = 40 * 3 * 4 + 40 + 2 * 128  # float32 x, uint8 y, two 128-byte .npy headers
    key = secure_api.make_key("hoarder", "--max-dataset-bytes-total", str(stored * 2 + 10))
    with secure_api.client(key["key"]) as c:
        for _ in range(2):
            f = {"file": ("s.npz", small, "application/octet-stream")}
            assert c.post("/datasets", files=f).status_code == 201
        f = {"file": ("s.npz", small, "application/octet-stream")}
        err = assert_error(c.post("/datasets", files=f), 413, "quota_exceeded")
        assert err["details"]["limit"] == "max_dataset_bytes_total"
        # deleting one makes room again
        first = [d for d in c.get("/datasets").json()["data"] if not d["builtin"]][0]["id"]
        assert c.delete(f"/datasets/{first}").status_code == 204
        assert c.post("/datasets", files=f).status_code == 201


def test_rate_limit_429_with_retry_after(secure_api):
    key = secure_api.make_key("chatty", "--rate-limit-per-s", "1", "--rate-limit-burst", "5")["key"]
    with secure_api.client(key) as c:
        codes = [c.get("/jobs").status_code for _ in range(8)]
        assert codes[:5] == [200] * 5
        assert 429 in codes[5:]
        resp = c.get("/jobs")
        err = assert_error(resp, 429, "rate_limited")
        assert int(resp.headers["retry-after"]) >= 1
        assert err["details"]["limit"] == "rate_limit_per_s"
    # other keys are not slowed down
    other = secure_api.make_key("quiet")["key"]
    with secure_api.client(other) as c:
        assert c.get("/jobs").status_code == 200


def test_json_body_limit_is_413(open_api):
    with open_api.client() as c:
        big = {**SPEC, "name": "x" * 100_000}
        assert_error(c.post("/jobs", json=big), 413, "payload_too_large")

        # a chunked body (no Content-Length) is counted as it streams
        def chunks():
            yield b'{"name": "'
            for _ in range(100):
                yield b"x" * 1000
            yield b'", "data": {"dataset": "digits"}}'

        resp = c.post("/jobs", content=chunks(), headers={"Content-Type": "application/json"})
        assert_error(resp, 413, "payload_too_large")


def test_sweep_children_respect_the_active_jobs_quota(secure_api):
    """A sweep cannot get around max_active_jobs: children past it stay pending."""
    key = secure_api.make_key("sweeper", "--max-active-jobs", "2")["key"]
    body = {
        "base": SPEC,
        "grid": {"regularization.label_smoothing": [0.0, 0.05, 0.1, 0.15]},
        "seeds": 1,
        "max_concurrent": 4,
    }
    with secure_api.client(key) as c:
        r = c.post("/sweeps", json=body)
        assert r.status_code == 201, r.text
        counts = r.json()["counts"]
        assert counts["queued"] == 2 and counts["pending"] == 2, counts
        assert len(c.get("/jobs", params={"status": "queued"}).json()["data"]) == 2


def test_sweep_variant_over_the_samples_quota_names_it(secure_api):
    key = secure_api.make_key("sweep-small", "--max-train-samples", "10000")["key"]
    body = {"base": SPEC, "grid": {"training.epochs": [2, 50]}, "seeds": 1}
    with secure_api.client(key) as c:
        err = assert_error(c.post("/sweeps", json=body), 422)
        assert "variant 1" in err["message"] and "max_train_samples" in err["message"], err
        assert err["details"][0]["loc"] == ["variants", 1, "training", "epochs"]
