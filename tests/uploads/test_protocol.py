"""tus 1.0.0 over HTTP against the real API: discovery, creation, HEAD, PATCH rules, termination,
expiry, quotas and tenancy. Expected values come from the tus 1.0.0 specification."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from email.utils import parsedate_to_datetime

import pytest
from uploads.tus_http import MAX_TOTAL, MAX_UPLOAD, OFFSET_TYPE, TUS, create, head_offset, patch

from api.tus import sweep_expired
from tricklab.settings import Settings


def test_options_lists_version_extensions_and_max_size(client):
    r = client.options("/uploads")
    assert r.status_code == 204
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert r.headers["Tus-Version"] == "1.0.0"
    ext = r.headers["Tus-Extension"].split(",")
    assert {"creation", "termination", "expiration", "checksum"} <= set(ext)
    assert int(r.headers["Tus-Max-Size"]) == MAX_UPLOAD
    assert "sha1" in r.headers["Tus-Checksum-Algorithm"].split(",")


def test_create_head_patch_in_two_pieces(client, tus_api):
    data = os.urandom(300_000)
    before = time.time()
    r = client.post(
        "/uploads",
        headers={**TUS, "Upload-Length": str(len(data)),
                 "Upload-Metadata": "filename ZC5ucHo=,private"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    loc = r.headers["Location"]
    assert loc.startswith("/uploads/u")
    assert r.json()["location"] == loc and loc.endswith(r.json()["id"])
    assert (r.json()["length"], r.json()["offset"]) == (len(data), 0)
    assert r.headers["Tus-Resumable"] == "1.0.0"
    expires = parsedate_to_datetime(r.headers["Upload-Expires"]).timestamp()
    assert before + 24 * 3600 - 5 <= expires <= time.time() + 24 * 3600 + 5

    h = client.head(loc, headers=TUS)
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Upload-Offset"] == "0"
    assert h.headers["Upload-Length"] == str(len(data))
    assert h.headers["Upload-Metadata"] == "filename ZC5ucHo=,private"
    assert h.headers["Cache-Control"] == "no-store"

    r = patch(client, loc, 0, data[:100_000])
    assert r.status_code == 204, r.text
    assert r.headers["Upload-Offset"] == "100000"
    assert head_offset(client, loc) == 100_000
    r = patch(client, loc, 100_000, data[100_000:])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
    kept = parsedate_to_datetime(r.headers["Upload-Expires"]).timestamp()
    assert kept >= expires  # a finished upload is kept an expiry period from when it finished
    stored = tus_api.file(loc.rsplit("/", 1)[1]).read_bytes()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()


def test_offset_mismatch_is_409_naming_the_offset(client):
    loc = create(client, 1000)
    assert patch(client, loc, 0, b"x" * 10).status_code == 204
    r = patch(client, loc, 5, b"y" * 10)
    assert r.status_code == 409
    assert r.json()["error"]["details"]["offset"] == 10
    assert "10" in r.json()["error"]["message"]
    assert head_offset(client, loc) == 10


@pytest.mark.parametrize("ctype", [None, "application/octet-stream", "application/json"])
def test_wrong_content_type_is_415(client, ctype):
    loc = create(client, 100)
    headers = {**TUS, "Upload-Offset": "0"}
    if ctype:
        headers["Content-Type"] = ctype
    r = client.patch(loc, content=b"a" * 10, headers=headers)
    assert r.status_code == 415
    assert OFFSET_TYPE in r.json()["error"]["message"]
    assert head_offset(client, loc) == 0


@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
def test_missing_or_other_tus_version_is_412(client, version):
    loc = create(client, 100)
    headers = {"Content-Type": OFFSET_TYPE, "Upload-Offset": "0"}
    if version:
        headers["Tus-Resumable"] = version
    r = client.patch(loc, content=b"a", headers=headers)
    assert r.status_code == 412
    assert r.headers["Tus-Version"] == "1.0.0"
    assert client.post("/uploads", headers={"Upload-Length": "5"}).status_code == 412


@pytest.mark.parametrize("length", [None, "", "abc", "-1", "1.5", "9" * 30])
def test_bad_upload_length_is_400_naming_it(client, length):
    headers = dict(TUS)
    if length is not None:
        headers["Upload-Length"] = length
    r = client.post("/uploads", headers=headers)
    assert r.status_code == 400
    assert "Upload-Length" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "meta",
    [
        "filename !!notb64",
        "filename a b",
        "k MQ==,k Mg==",
        "a\tb",
        "x " + base64.b64encode(b"\xff").decode(),
    ],
)
def test_bad_metadata_is_400_naming_it(client, meta):
    r = client.post("/uploads", headers={**TUS, "Upload-Length": "5", "Upload-Metadata": meta})
    assert r.status_code == 400
    assert "Upload-Metadata" in r.json()["error"]["message"]


def test_above_max_size_is_413(client):
    r = client.post("/uploads", headers={**TUS, "Upload-Length": str(MAX_UPLOAD + 1)})
    assert r.status_code == 413
    assert r.json()["error"]["details"]["limit"] == "max_upload_bytes"


def test_unfinished_uploads_count_against_the_storage_quota(client):
    first = create(client, MAX_UPLOAD)  # 512 MiB reserved, nothing sent yet
    r = client.post("/uploads", headers={**TUS, "Upload-Length": str(MAX_UPLOAD)})
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["details"]["limit"] == "max_dataset_bytes_total"
    assert err["details"]["reserved"] >= MAX_UPLOAD
    room = MAX_TOTAL - err["details"]["used"] - err["details"]["reserved"]
    assert 0 < room < MAX_TOTAL - MAX_UPLOAD + 1
    second = create(client, room)  # exactly fills the quota
    assert client.post("/uploads", headers={**TUS, "Upload-Length": "1"}).status_code == 413
    for loc in (first, second):
        assert client.delete(loc, headers=TUS).status_code == 204
    r = client.post("/uploads", headers={**TUS, "Upload-Length": str(2 * 2**20)})
    assert r.status_code == 201
    assert client.delete(r.headers["Location"], headers=TUS).status_code == 204


def test_body_past_upload_length_is_400_and_nothing_is_kept(client, tus_api):
    loc = create(client, 100)
    assert patch(client, loc, 0, b"a" * 40).status_code == 204
    r = patch(client, loc, 40, b"b" * 61)  # Content-Length says it at once
    assert r.status_code == 400 and "Upload-Length" in r.json()["error"]["message"]
    assert head_offset(client, loc) == 40

    def chunks():  # no Content-Length: found out while streaming
        yield b"c" * 30
        yield b"d" * 31

    r = client.patch(
        loc, content=chunks(), headers={**TUS, "Content-Type": OFFSET_TYPE, "Upload-Offset": "40"}
    )
    assert r.status_code == 400
    assert head_offset(client, loc) == 40
    assert tus_api.file(loc.rsplit("/", 1)[1]).stat().st_size == 40


def test_termination_removes_file_and_record(client, tus_api):
    loc = create(client, 50)
    assert patch(client, loc, 0, b"z" * 20).status_code == 204
    path = tus_api.file(loc.rsplit("/", 1)[1])
    assert path.exists()
    r = client.delete(loc, headers=TUS)
    assert r.status_code == 204 and r.headers["Tus-Resumable"] == "1.0.0"
    assert not path.exists()
    assert client.head(loc, headers=TUS).status_code == 404
    assert patch(client, loc, 20, b"z").status_code == 404
    assert client.delete(loc, headers=TUS).status_code == 404


@pytest.mark.parametrize("uid", ["u0", "nope", "u" + "0" * 28, "..%2f..%2fetc"])
def test_unknown_ids_are_404(client, uid):
    assert client.head(f"/uploads/{uid}", headers=TUS).status_code == 404
    assert patch(client, f"/uploads/{uid}", 0, b"a").status_code == 404


def test_checksum_match_keeps_and_mismatch_is_460(client):
    loc = create(client, 20)
    good = "sha1 " + base64.b64encode(hashlib.sha1(b"0123456789").digest()).decode()
    assert patch(client, loc, 0, b"0123456789", **{"Upload-Checksum": good}).status_code == 204
    bad = "md5 " + base64.b64encode(hashlib.md5(b"other").digest()).decode()
    r = patch(client, loc, 10, b"abcdefghij", **{"Upload-Checksum": bad})
    assert r.status_code == 460
    assert head_offset(client, loc) == 10
    r = patch(client, loc, 10, b"abcdefghij", **{"Upload-Checksum": "crc32 AAAA"})
    assert r.status_code == 400 and "Upload-Checksum" in r.json()["error"]["message"]


def test_expired_uploads_are_removed_on_access_and_by_the_sweep(client, tus_api):
    store = tus_api.store()
    lazy, swept = create(client, 10), create(client, 10)
    lazy_id, swept_id = lazy.rsplit("/", 1)[1], swept.rsplit("/", 1)[1]
    assert patch(client, swept, 0, b"12345").status_code == 204
    past = time.time() - 1
    store.r.hset(store.keys.upload(lazy_id), "expires_at", past)
    assert client.head(lazy, headers=TUS).status_code == 404  # lazily removed
    assert not tus_api.file(lazy_id).exists()
    assert not store.r.exists(store.keys.upload(lazy_id))

    settings = Settings(artifact_dir=tus_api.artifact_dir)
    assert swept_id not in sweep_expired(store, settings)  # not due yet
    removed = sweep_expired(store, settings, now=time.time() + 24 * 3600 + 60)
    assert swept_id in removed
    assert not tus_api.file(swept_id).exists()
    assert not store.r.sismember(store.keys.uploads("default"), swept_id)
    assert client.head(swept, headers=TUS).status_code == 404


def test_another_tenants_upload_is_404_everywhere(tus_secure_api):
    api = tus_secure_api
    a, b = api.make_key("tus-alice"), api.make_key("tus-bob")
    with api.client(a) as ca, api.client(b) as cb:
        loc = create(ca, 10)
        assert patch(ca, loc, 0, b"abc").status_code == 204
        r = cb.head(loc, headers=TUS)
        assert r.status_code == 404
        assert patch(cb, loc, 3, b"d").status_code == 404
        assert cb.delete(loc, headers=TUS).status_code == 404
        assert head_offset(ca, loc) == 3  # untouched
        with api.client() as anon:
            assert anon.head(loc, headers=TUS).status_code == 401
