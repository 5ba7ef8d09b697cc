"""Request limits and ids (api/limits.py, tricks/uploads.py, tricklab/server/records.py).

The `api` fixture runs with a 64 KiB body limit and a 256 KiB upload limit.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile

import numpy as np
from support import assert_error

from tricklab.server.records import new_id, new_ids

BODY_LIMIT = 64 * 1024


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_a_json_body_sent_as_multipart_gets_the_body_limit_not_the_upload_limit(api, client):
    """Only POST /datasets takes a file; a 100 KB multipart body anywhere else is a 413."""
    spec = json.dumps({"data": {"dataset": "digits"}, "name": "x" * 100_000})
    for path in ("/jobs", "/sweeps", "/schedules/preview", "/datasets/digits"):
        r = client.post(path, files={"spec": ("spec.json", spec, "application/json")})
        err = assert_error(r, 413, "payload_too_large")
        assert err["details"]["limit"] == BODY_LIMIT, (path, err)
        assert str(BODY_LIMIT) in err["message"]


def test_a_multipart_upload_to_post_datasets_still_gets_the_upload_limit(api, client):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 4)).astype(np.float32)  # 64 KB of floats, above BODY_LIMIT
    buf = io.BytesIO()
    np.savez(buf, x=x, y=np.arange(4000) % 2)
    assert BODY_LIMIT < len(buf.getvalue()) < api.max_upload_bytes
    r = client.post("/datasets", files={"file": ("big.npz", buf.getvalue())})
    assert r.status_code == 201, r.text
    assert client.delete(f"/datasets/{r.json()['id']}").status_code == 204


def test_an_npz_with_a_member_twice_is_422_naming_it(api, client):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("x.npy", npy(np.zeros((20, 3), dtype=np.float32)))
            zf.writestr("y.npy", npy(np.arange(20) % 2))
            zf.writestr("x.npy", npy(np.ones((20, 3), dtype=np.float32)))  # "last wins" before
    r = client.post("/datasets", files={"file": ("dup.npz", buf.getvalue())})
    err = assert_error(r, 422, "validation_error")
    assert err["details"][0]["loc"] == ["file", "x"], err
    assert "more than once" in err["message"]


def test_ids_carry_64_random_bits_and_sort_by_time():
    ids = [new_id() for _ in range(2000)]
    assert all(re.fullmatch(r"j[0-9a-f]{28}", i) for i in ids)
    tails = {i[13:] for i in ids}
    assert len(tails) == len(ids)
    # 16 random hex digits: every position takes many values (8 digits would leave 8 at 0)
    assert all(len({t[k] for t in tails}) > 8 for k in range(16))
    first, later = new_id("s"), None
    import time

    time.sleep(0.002)
    later = new_id("s")
    assert first < later and len(first) == 29


def test_ids_drawn_at_once_sort_in_the_order_drawn():
    for _ in range(50):
        ids = new_ids(300)
        assert ids == sorted(ids) and len(set(ids)) == 300
        assert all(re.fullmatch(r"j[0-9a-f]{28}", i) for i in ids)


def test_routes_take_new_and_old_length_ids(api, client):
    job = client.post("/jobs", json={"data": {"dataset": "digits"}}).json()
    assert len(job["id"]) == 29
    for cursor in (job["id"], "j" + "0" * 20):  # a new id, and one made before the change
        assert client.get("/jobs", params={"cursor": cursor}).status_code == 200, cursor
        assert client.get("/sweeps", params={"cursor": "s" + cursor[1:]}).status_code == 200
    assert_error(client.get("/jobs", params={"cursor": "j" + "0" * 24}), 422)
    client.post(f"/jobs/{job['id']}/cancel")
