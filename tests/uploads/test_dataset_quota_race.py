"""The storage quota holds for direct dataset uploads too, and for them racing tus uploads,
across two API processes of one deployment (tests/uploads/racing.py).

A dataset's stored bytes are known from the file's headers before any array data is
written; they are reserved then (lua/dataset_reserve.lua), under the tenant's reservation
lock that tus reservations take too (api/quota_lock.py). The oracle is the quota itself:
whatever the interleaving, exactly the requests that fit are let in, and what stays
reserved afterwards is what is stored.
"""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
from uploads.racing import (
    QUOTA,
    Apis,
    MiB,
    at_once,
    clean_uploads,
    held_by_uploads,
    post_upload,
)
from uploads.tus_http import OFFSET_TYPE, TUS


def _npz(mib: int, seed: int = 0) -> bytes:
    """An .npz of float32 images 16 x 16 that stores about `mib` MiB, labels 0..2."""
    rng = np.random.default_rng(seed)
    n = mib * MiB // (16 * 16 * 4)
    buf = io.BytesIO()
    np.savez(buf, x=rng.standard_normal((n, 1, 16, 16)).astype(np.float32),
             y=rng.integers(0, 3, n).astype(np.int64))  # fmt: skip
    return buf.getvalue()


def _post_dataset(c: httpx.Client, data: bytes, name: str) -> httpx.Response:
    """POST /datasets, again while the heavy pool is full (503/429 say when to retry)."""
    for _ in range(200):
        r = c.post("/datasets", files={"file": (name, data, "application/octet-stream")})
        if r.status_code not in (429, 503):
            return r
        time.sleep(float(r.headers.get("Retry-After", "0.2")) / 4)
    raise AssertionError(f"the heavy pool stayed full: {r.text}")


def _pending(apis: Apis) -> dict:
    store = apis.store()
    return store.r.hgetall(store.keys.datasets_pending("default"))


def test_concurrent_dataset_uploads_never_store_past_the_quota(apis, clients):
    """Each stores 5 MiB of an 8 MiB quota: whatever the interleaving, exactly one is kept
    (a check then a write let two parses in two processes both pass on the same free bytes)."""
    data = _npz(5)
    for _ in range(2):
        rs = at_once(4, lambda i: _post_dataset(clients[i % 2], data, f"r{i}.npz"))
        assert sorted(r.status_code for r in rs) == [201, 413, 413, 413], [r.text for r in rs]
        for r in rs:
            if r.status_code == 413:
                assert r.json()["error"]["details"]["limit"] == "max_dataset_bytes_total"
        kept = [d for d in clients[0].get("/datasets").json()["data"] if not d["builtin"]]
        assert len(kept) == 1 and kept[0]["stored_bytes"] <= QUOTA
        assert _pending(apis) == {}  # every reservation was dropped: kept or refused
        assert clients[1].delete(f"/datasets/{kept[0]['id']}").status_code == 204


def test_a_refused_dataset_upload_gives_back_what_it_reserved(apis, clients):
    """Bytes damaged inside the array data: the stored size is known (and reserved) from the
    headers, the CRC-32 fails while the data is written; the bytes come back at once."""
    data = bytearray(_npz(5))
    data[len(data) // 2] ^= 0xFF
    r = _post_dataset(clients[0], bytes(data), "bad.npz")
    assert r.status_code == 422, r.text
    assert _pending(apis) == {}
    r = _post_dataset(clients[1], _npz(7), "fits.npz")
    assert r.status_code == 201, r.text


def test_tus_uploads_count_the_datasets_being_written(apis, clients, monkeypatch):
    """A dataset being written holds its bytes against tus uploads too, until it is recorded,
    released, or its reservation lapses (its API process died)."""
    import api.uploads as repo_mod

    repo = repo_mod.DatasetRepo(apis.store().r, apis.prefix, apis.artifact_dir / "datasets")
    assert repo.reserve("default", "dwriting", 5 * MiB, QUOTA)[0]
    assert not repo.reserve("default", "dother", 4 * MiB, QUOTA)[0]
    assert post_upload(clients[0], 4 * MiB).status_code == 413
    repo.release("default", "dwriting")
    r = post_upload(clients[1], 4 * MiB)
    assert r.status_code == 201, r.text
    clean_uploads(clients, apis)
    monkeypatch.setattr(repo_mod, "RESERVE_TTL_S", 1)
    assert repo.reserve("default", "ddied", 5 * MiB, QUOTA)[0]
    assert post_upload(clients[0], 4 * MiB).status_code == 413
    time.sleep(1.2)
    r = post_upload(clients[0], 4 * MiB)
    assert r.status_code == 201, r.text
    assert repo.reserve("default", "dnext", 4 * MiB, QUOTA - 4 * MiB)[0]  # the lapsed one is gone
    assert set(_pending(apis)) == {"dnext"}
    repo.release("default", "dnext")


def test_tus_uploads_and_datasets_racing_never_pass_the_quota_together(apis, clients):
    """Racing tus creations and direct dataset uploads, 5 MiB each of an 8 MiB quota: one of
    them, whichever, is let in (each kind used to count the other from a read made before
    its own script, and a dataset did not count tus uploads at all)."""
    data = _npz(5)

    def either(i: int) -> httpx.Response:
        c = clients[i % 2]
        return post_upload(c, 5 * MiB) if i % 4 < 2 else _post_dataset(c, data, f"x{i}.npz")

    for _ in range(3):
        rs = at_once(8, either)
        assert sorted(r.status_code for r in rs) == [201] + [413] * 7, [r.text for r in rs]
        kept = [d for d in clients[0].get("/datasets").json()["data"] if not d["builtin"]]
        assert sum(d["stored_bytes"] for d in kept) + held_by_uploads(apis) <= QUOTA
        assert _pending(apis) == {}
        for d in kept:
            assert clients[0].delete(f"/datasets/{d['id']}").status_code == 204
        clean_uploads(clients, apis)


def test_a_dataset_made_from_an_upload_does_not_count_that_upload(apis, clients):
    """6 MiB uploaded by tus, then made a dataset: the upload's own hold does not count
    against the dataset it becomes (6 + 6 > 8), another upload's does."""
    data = _npz(6)
    meta = "filename " + "Ni5ucHo="  # base64("6.npz")
    h = {**TUS, "Content-Type": OFFSET_TYPE, "Upload-Length": str(len(data)),
         "Upload-Metadata": meta}  # fmt: skip
    r = clients[0].post("/uploads", content=data, headers=h)
    assert r.status_code == 201, r.text
    r = clients[1].post("/datasets", json={"upload": r.json()["id"], "name": "six"})
    assert r.status_code == 201, r.text
    assert held_by_uploads(apis) == 0 and _pending(apis) == {}
    r = post_upload(clients[0], 1 * MiB)  # 1 MiB held by tus: a 1 MiB dataset no longer fits
    assert r.status_code == 201, r.text
    r = _post_dataset(clients[1], _npz(1), "one.npz")
    assert r.status_code == 413, r.text
    assert r.json()["error"]["details"]["reserved"] == 1 * MiB


def test_a_dead_holders_quota_lock_delays_reservations_only_until_it_lapses(apis, clients):
    """The per-tenant reservation lock of an API process that died holding it: requests wait
    for it to lapse; one held past the wait (a stuck holder) is a 503 with Retry-After."""
    store = apis.store()
    key = store.keys.quota_lock("default")
    store.r.set(key, "dead-process", px=1500)
    t0 = time.monotonic()
    r = post_upload(clients[0], 1 * MiB)
    assert r.status_code == 201, r.text
    assert time.monotonic() - t0 >= 1.0  # it waited for the lapse
    store.r.set(key, "stuck-process", px=20_000)
    try:
        files = {"file": ("late.npz", _npz(1), "application/octet-stream")}
        r = clients[1].post("/datasets", files=files)  # once: _post_dataset retries a 503
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "quota_busy" and r.headers["Retry-After"] == "1"
        assert _pending(apis) == {}
        stored = apis.artifact_dir / "datasets"  # nothing of it is left behind
        assert not (stored.is_dir() and any(stored.iterdir())), list(stored.iterdir())
    finally:
        store.r.delete(key)
    clean_uploads(clients, apis)
