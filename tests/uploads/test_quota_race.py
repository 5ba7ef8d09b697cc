"""The storage quota holds under concurrent tus requests of one tenant, across API processes.

Two uvicorn processes share one Redis (a private key prefix) and one artifact directory, as
several API processes of a deployment do; the racing requests are real HTTP from threads,
split between the two. The oracle is the quota itself: whatever the interleaving, the bytes
the tenant's uploads hold or were allowed to store never pass max_dataset_bytes_total, and
exactly the requests that fit succeed. Reservations come back when an upload is deleted,
becomes a dataset, when a PATCH ends, and when an API process dies in the middle of one.
"""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from support import wait_for
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

DEFER = {**TUS, "Upload-Defer-Length": "1"}


def _deferred(c: httpx.Client) -> str:
    r = c.post("/uploads", headers=DEFER)
    assert r.status_code == 201, r.text
    return r.headers["Location"]


def _offset(c: httpx.Client, loc: str) -> int:
    r = c.head(loc, headers=TUS)
    return int(r.headers["Upload-Offset"]) if r.status_code == 200 else 0


# ------------------------------------------------------------------ racing requests
ROUNDS, RACERS = 6, 12


def test_concurrent_creations_never_reserve_past_the_quota(apis, clients):
    """Each POST asks for 5 MiB of an empty 8 MiB quota: exactly one fits, every round."""
    for _ in range(ROUNDS):
        rs = at_once(RACERS, lambda i: post_upload(clients[i % 2], 5 * MiB))
        codes = sorted(r.status_code for r in rs)
        assert codes == [201] + [413] * (RACERS - 1), codes
        assert all(r.json()["error"]["details"]["limit"] == "max_dataset_bytes_total"
                   for r in rs if r.status_code == 413)  # fmt: skip
        assert held_by_uploads(apis) == 5 * MiB
        clean_uploads(clients, apis)


def test_concurrent_creations_with_upload_never_store_past_the_quota(apis, clients):
    """creation-with-upload: a POST of 3 MiB with its body; two fit in 8 MiB, a third never."""
    body = secrets.token_bytes(3 * MiB)

    def post(i: int) -> httpx.Response:
        h = {**TUS, "Content-Type": OFFSET_TYPE, "Upload-Length": str(len(body))}
        return clients[i % 2].post("/uploads", content=body, headers=h)

    for _ in range(ROUNDS // 2):
        rs = at_once(RACERS // 2, post)
        assert sorted(r.status_code for r in rs) == [201] * 2 + [413] * (RACERS // 2 - 2)
        assert held_by_uploads(apis) == 6 * MiB
        clean_uploads(clients, apis)


def test_concurrent_length_declarations_never_pass_the_quota(apis, clients):
    """PATCHes that declare Upload-Length 5 MiB on deferred uploads: one fits."""
    h = {**TUS, "Content-Type": OFFSET_TYPE, "Upload-Offset": "0", "Upload-Length": str(5 * MiB)}
    for _ in range(ROUNDS):
        locs = [_deferred(clients[0]) for _ in range(RACERS)]
        rs = at_once(RACERS, lambda i, locs=locs: clients[i % 2].patch(locs[i], headers=h))
        codes = sorted(r.status_code for r in rs)
        assert codes == [204] + [413] * (RACERS - 1), codes
        assert held_by_uploads(apis) == 5 * MiB
        clean_uploads(clients, apis)


def _slow_patches(
    apis: Apis, clients: list[httpx.Client], locs: list[str], size: int, *, declare: bool,
    post: bool = False,
) -> list[httpx.Response]:  # fmt: skip
    """One PATCH (or creation-with-upload POST) per upload, each `size` bytes with no
    Upload-Length (deferred), through alternating API processes. Each sends its first MiB,
    then waits until every one has its first MiB on the server (or a moment has passed: a
    request the server refused never gets there) before sending the rest, so that all of
    them are under way at once."""
    go = threading.Event()
    out: list[httpx.Response | None] = [None] * len(locs)

    def body() -> Iterator[bytes]:
        yield b"q" * MiB
        go.wait(30)
        for _ in range(size // MiB - 1):
            yield b"q" * MiB

    def send(i: int) -> None:
        h = {**TUS, "Content-Type": OFFSET_TYPE}
        if declare:  # an explicit Content-Length: httpx then sends no chunked framing
            h["Content-Length"] = str(size)
        c = clients[i % 2]
        if post:
            out[i] = c.post("/uploads", content=body(), headers={**h, **DEFER})
        else:
            out[i] = c.patch(locs[i], content=body(), headers={**h, "Upload-Offset": "0"})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(locs))]
    for t in threads:
        t.start()

    def first_mib() -> int:
        store = apis.store()
        files = [apis.artifact_dir / "uploads" / str(u)
                 for u in store.r.smembers(store.keys.uploads("default"))]  # fmt: skip
        return sum(1 for f in files if f.exists() and f.stat().st_size >= MiB)

    try:
        wait_for(lambda: first_mib() >= len(locs), 1.5)  # the old code got all of them there
    except TimeoutError:
        pass  # some were refused: they never write a byte
    go.set()
    for t in threads:
        t.join(60)
    assert all(r is not None for r in out)
    return out  # type: ignore[return-value]


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "chunked"])
def test_concurrent_patches_of_deferred_uploads_never_store_past_the_quota(apis, clients, declare):
    """Two PATCHes of 6 MiB on two deferred uploads at once: only one fits in 8 MiB."""
    locs = [_deferred(clients[0]) for _ in range(2)]
    rs = _slow_patches(apis, clients, locs, 6 * MiB, declare=declare)
    codes = sorted(r.status_code for r in rs)
    assert codes == [204, 413], [r.text for r in rs]
    refused = next(r for r in rs if r.status_code == 413).json()["error"]
    assert refused["details"]["limit"] == "max_dataset_bytes_total"
    offsets = sorted(_offset(clients[0], loc) for loc in locs)
    assert offsets == [0, 6 * MiB]  # nothing of the refused body was kept
    assert held_by_uploads(apis) == 6 * MiB


def test_concurrent_deferred_creations_with_upload_never_store_past_the_quota(apis, clients):
    """Two POSTs with Upload-Defer-Length and a 6 MiB body at once: only one fits."""
    rs = _slow_patches(apis, clients, ["", ""], 6 * MiB, declare=True, post=True)
    codes = sorted(r.status_code for r in rs)
    assert codes == [201, 413], [r.text for r in rs]
    assert held_by_uploads(apis) == 6 * MiB


# --------------------------------------------------------- reservations come back
def test_a_deleted_upload_frees_its_reservation(clients):
    a, b = clients
    r = post_upload(a, QUOTA)
    assert r.status_code == 201
    assert post_upload(b, 1).status_code == 413
    assert b.delete(r.headers["Location"], headers=TUS).status_code == 204
    r = post_upload(b, QUOTA)
    assert r.status_code == 201, r.text


def test_an_upload_made_a_dataset_holds_only_the_datasets_bytes(apis, clients):
    a, b = clients
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x=rng.standard_normal((2000, 64)).astype(np.float32),
             y=rng.integers(0, 3, 2000).astype(np.int64))  # fmt: skip
    data = buf.getvalue()
    meta = "filename " + "dHJhaW4ubnB6"  # base64("train.npz")
    h = {**TUS, "Content-Type": OFFSET_TYPE, "Upload-Length": str(len(data)),
         "Upload-Metadata": meta}  # fmt: skip
    r = a.post("/uploads", content=data, headers=h)
    assert r.status_code == 201, r.text
    upload_id = r.json()["id"]
    r = b.post("/datasets", json={"upload": upload_id, "name": "quota"})
    assert r.status_code == 201, r.text
    stored = r.json()["stored_bytes"]
    assert 0 < stored < QUOTA
    assert held_by_uploads(apis) == 0  # the upload is gone, its reservation with it
    assert post_upload(a, QUOTA - stored + 1).status_code == 413
    r = post_upload(b, QUOTA - stored)  # exactly the rest of the quota
    assert r.status_code == 201, r.text


def test_a_finished_patch_returns_what_it_did_not_use(apis, clients):
    """A chunked PATCH of a deferred upload may use all the room while it runs; once it
    ends, only its bytes count."""
    a, b = clients
    loc = _deferred(a)
    go = threading.Event()
    done: list[httpx.Response] = []

    def body() -> Iterator[bytes]:
        yield b"q" * MiB
        go.wait(30)
        yield b"q" * MiB

    h = {**TUS, "Content-Type": OFFSET_TYPE, "Upload-Offset": "0"}
    t = threading.Thread(target=lambda: done.append(a.patch(loc, content=body(), headers=h)))
    t.start()
    try:
        wait_for(lambda: _offset(b, loc) >= MiB, 20, what="the first MiB on the server")
        assert post_upload(b, 1).status_code == 413  # its room is its own while it runs
    finally:
        go.set()
        t.join(60)
    assert done and done[0].status_code == 204, done and done[0].text
    assert post_upload(b, QUOTA - 2 * MiB + 1).status_code == 413
    r = post_upload(b, QUOTA - 2 * MiB)
    assert r.status_code == 201, r.text


def test_a_patch_whose_api_process_died_holds_the_room_only_until_its_lock_lapses(apis, clients):
    """kill -9 of the API process in the middle of a chunked PATCH: its grant lapses with
    the upload's lock (LOCK_TTL_S; the test expires the lock rather than waiting), and the
    bytes it wrote count from then on."""
    a, _ = clients
    loc = _deferred(a)
    upload_id = loc.rsplit("/", 1)[1]
    headers = {**TUS, "Content-Type": OFFSET_TYPE, "Upload-Offset": "0"}
    _kill_mid_request(apis, "quota-api-doomed", "PATCH", loc, headers,
                      lambda: _offset(a, loc) >= MiB)  # fmt: skip
    store = apis.store()
    assert store.r.exists(store.keys.upload_lock(upload_id))  # the dead PATCH's lock
    assert post_upload(a, 1).status_code == 413  # still its room, for now
    store.r.pexpire(store.keys.upload_lock(upload_id), 1)  # LOCK_TTL_S later
    wait_for(lambda: not store.r.exists(store.keys.upload_lock(upload_id)), 5)
    assert post_upload(a, QUOTA - MiB + 1).status_code == 413  # the MiB it wrote counts
    r = post_upload(a, QUOTA - MiB)
    assert r.status_code == 201, r.text


def _kill_mid_request(
    apis: Apis, name: str, method: str, path: str, headers: dict, landed: Callable[[], object]
) -> object:
    """Send 1 MiB of a longer body with `method` to a fresh API process `name`, kill -9 that
    process once `landed()` says the MiB is on the server, and return what landed() said."""
    url, proc = apis.start(name)
    go = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"q" * MiB
        go.wait(30)
        yield b"q"

    def send() -> None:
        with httpx.Client(base_url=url, timeout=30) as c, pytest.raises(httpx.HTTPError):
            c.request(method, path, content=body(), headers=headers)

    t = threading.Thread(target=send)
    t.start()
    try:
        got = wait_for(landed, 20, what="the first MiB on the server")
        proc.signal(9)
        proc.proc.wait(10)  # type: ignore[union-attr]
    finally:
        go.set()
        t.join(60)
        proc.stop()
    return got


def _later(apis: Apis, upload_id: str, seconds: float) -> None:
    """Move the upload `seconds` into the future: its times in Redis go back by that much and
    its lock (which never lives longer than LOCK_TTL_S) lapses."""
    store = apis.store()
    key = store.keys.upload(upload_id)
    until = float(store.r.hget(key, "expires_at")) - seconds
    store.r.hset(
        key,
        mapping={
            "expires_at": until,
            "created_at": float(store.r.hget(key, "created_at")) - seconds,
        },
    )
    store.r.zadd(store.keys.uploads_expiry, {upload_id: until})
    store.r.delete(store.keys.upload_lock(upload_id))


def test_a_creation_with_upload_whose_api_process_died_holds_the_quota_only_briefly(apis, clients):
    """kill -9 in the middle of a POST's first chunk: no one heard the 201, so no one can
    DELETE the upload; its Upload-Length must not stay reserved for the expiry period
    (a day) but lapse with the first chunk's lock."""
    a, _ = clients
    store = apis.store()

    def landed() -> str | None:
        for uid in store.r.smembers(store.keys.uploads("default")):
            if int(store.r.hget(store.keys.upload(uid), "offset") or 0) >= MiB:
                return str(uid)
        return None

    headers = {**TUS, "Content-Type": OFFSET_TYPE, "Upload-Length": str(QUOTA)}
    upload_id = _kill_mid_request(apis, "quota-api-doomed-post", "POST", "/uploads", headers,
                                  landed)  # fmt: skip
    assert post_upload(a, 1).status_code == 413  # its lock still lives
    _later(apis, upload_id, 31)  # LOCK_TTL_S (30 s) and a second later
    r = post_upload(a, QUOTA)
    assert r.status_code == 201, r.text
    assert not store.r.exists(store.keys.upload(upload_id))  # and it is gone
