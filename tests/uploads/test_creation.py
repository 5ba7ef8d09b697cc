"""tus 1.0.0 creation-with-upload and creation-defer-length over HTTP against the real API.

Expected statuses and headers are the tus 1.0.0 specification's (201 + Location +
Upload-Offset for a POST with a body; Upload-Defer-Length: 1 on HEAD until a PATCH sets
Upload-Length); stored bytes are compared with the bytes sent (sha256 of the source)."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from uploads.tus_http import MAX_TOTAL, MAX_UPLOAD, OFFSET_TYPE, TUS, head_offset, patch

from api.errors import ApiError
from api.tus import take_upload
from tricklab.settings import Settings

DEFER = {**TUS, "Upload-Defer-Length": "1"}


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _sha1(b: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(b).digest()).decode()


def _post_body(client, body: bytes, **headers: str):
    return client.post(
        "/uploads", content=body, headers={**TUS, "Content-Type": OFFSET_TYPE, **headers}
    )


def _ids(tus_api) -> set[str]:
    store = tus_api.store()
    return {str(u) for u in store.r.smembers(store.keys.uploads("default"))}


def test_options_advertises_the_creation_extensions(client):
    ext = client.options("/uploads").headers["Tus-Extension"].split(",")
    assert {"creation-with-upload", "creation-defer-length"} <= set(ext)


def test_post_with_the_whole_body_stores_it(client, tus_api):
    data = os.urandom(200_000)
    r = _post_body(client, data, **{"Upload-Length": str(len(data))})
    assert r.status_code == 201, r.text
    loc = r.headers["Location"]
    assert loc.startswith("/uploads/u") and r.headers["Tus-Resumable"] == "1.0.0"
    assert r.headers["Upload-Offset"] == str(len(data))
    assert r.json()["offset"] == len(data)
    assert head_offset(client, loc) == len(data)
    assert _sha(tus_api.file(loc.rsplit("/", 1)[1]).read_bytes()) == _sha(data)


def test_post_with_a_first_chunk_then_patch_the_rest(client, tus_api):
    data = os.urandom(150_000)
    r = _post_body(
        client, data[:60_000],
        **{"Upload-Length": str(len(data)), "Upload-Checksum": _sha1(data[:60_000])},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    loc = r.headers["Location"]
    assert r.headers["Upload-Offset"] == "60000"
    assert patch(client, loc, 0, b"x").status_code == 409  # the chunk is really there
    r = patch(client, loc, 60_000, data[60_000:])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
    assert _sha(tus_api.file(loc.rsplit("/", 1)[1]).read_bytes()) == _sha(data)


def test_post_without_a_body_type_answers_no_upload_offset(client):
    r = client.post("/uploads", headers={**TUS, "Upload-Length": "10"})
    assert r.status_code == 201 and "Upload-Offset" not in r.headers
    assert head_offset(client, r.headers["Location"]) == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Upload-Length": "100", "Upload-Checksum": _sha1(b"other")}, 460),
        ({"Upload-Length": "50"}, 400),  # 100 bytes sent, past Upload-Length
        ({"Upload-Length": "100", "Upload-Checksum": "crc32 AAAA"}, 400),
    ],
)
def test_a_refused_first_chunk_leaves_no_upload(client, tus_api, headers, status):
    before, files = _ids(tus_api), set(os.listdir(tus_api.artifact_dir / "uploads"))
    r = _post_body(client, b"a" * 100, **headers)
    assert r.status_code == status, r.text
    assert "Location" not in r.headers and r.headers["Tus-Resumable"] == "1.0.0"
    assert _ids(tus_api) == before
    assert set(os.listdir(tus_api.artifact_dir / "uploads")) == files


def test_deferred_length_is_declared_by_a_later_patch(client, tus_api):
    data = os.urandom(90_000)
    r = client.post("/uploads", headers=DEFER)
    assert r.status_code == 201, r.text
    loc = r.headers["Location"]
    assert r.json()["length"] is None
    h = client.head(loc, headers=TUS)
    assert h.status_code == 200
    assert h.headers["Upload-Defer-Length"] == "1" and "Upload-Length" not in h.headers
    assert h.headers["Upload-Offset"] == "0"

    assert patch(client, loc, 0, data[:30_000]).status_code == 204  # length still unknown
    h = client.head(loc, headers=TUS)
    assert h.headers["Upload-Defer-Length"] == "1" and h.headers["Upload-Offset"] == "30000"
    with pytest.raises(ApiError) as e:  # POST /datasets {"upload"} must wait for the rest
        take_upload(tus_api.store(), Settings(artifact_dir=tus_api.artifact_dir), "default",
                    loc.rsplit("/", 1)[1])  # fmt: skip
    assert e.value.status == 409

    r = patch(client, loc, 30_000, b"z", **{"Upload-Length": "29999"})  # below the offset
    assert r.status_code == 400 and "Upload-Length" in r.json()["error"]["message"]
    r = patch(client, loc, 30_000, b"z", **{"Upload-Length": "x1"})
    assert r.status_code == 400 and "Upload-Length" in r.json()["error"]["message"]
    r = patch(client, loc, 30_000, b"", **{"Upload-Length": str(MAX_UPLOAD + 1)})
    assert r.status_code == 413
    assert r.json()["error"]["details"]["limit"] == "max_upload_bytes"
    assert "Upload-Defer-Length" in client.head(loc, headers=TUS).headers  # nothing set

    r = patch(client, loc, 30_000, data[30_000:60_000], **{"Upload-Length": str(len(data))})
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "60000"
    h = client.head(loc, headers=TUS)
    assert h.headers["Upload-Length"] == str(len(data)) and "Upload-Defer-Length" not in h.headers
    r = patch(client, loc, 60_000, b"z", **{"Upload-Length": str(len(data) + 1)})  # changed
    assert r.status_code == 400 and "Upload-Length" in r.json()["error"]["message"]
    r = patch(client, loc, 60_000, data[60_000:], **{"Upload-Length": str(len(data))})  # same
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
    assert _sha(tus_api.file(loc.rsplit("/", 1)[1]).read_bytes()) == _sha(data)


def test_deferred_length_with_a_first_chunk(client, tus_api):
    data = os.urandom(40_000)
    r = _post_body(client, data[:25_000], **{"Upload-Defer-Length": "1"})
    assert r.status_code == 201, r.text
    loc = r.headers["Location"]
    assert r.headers["Upload-Offset"] == "25000"
    h = client.head(loc, headers=TUS)
    assert h.headers["Upload-Defer-Length"] == "1" and h.headers["Upload-Offset"] == "25000"
    r = patch(client, loc, 25_000, data[25_000:], **{"Upload-Length": str(len(data))})
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
    assert _sha(tus_api.file(loc.rsplit("/", 1)[1]).read_bytes()) == _sha(data)


@pytest.mark.parametrize(
    "headers",
    [
        {"Upload-Defer-Length": "2"},
        {"Upload-Defer-Length": "yes"},
        {"Upload-Defer-Length": "1", "Upload-Length": "10"},
        {},
    ],
)
def test_bad_length_headers_are_400_naming_them(client, headers):
    r = client.post("/uploads", headers={**TUS, **headers})
    assert r.status_code == 400
    msg = r.json()["error"]["message"]
    assert "Upload-Length" in msg or "Upload-Defer-Length" in msg


def test_a_deferred_upload_counts_its_bytes_and_the_quota_holds(client, tus_api):
    r = client.post("/uploads", headers=DEFER)
    assert r.status_code == 201
    loc = r.headers["Location"]
    assert patch(client, loc, 0, b"q").status_code == 204
    held: list[str] = []
    try:
        # take the quota down to 1000 bytes with reservations (no bytes need be sent)
        r = client.post("/uploads", headers={**TUS, "Upload-Length": str(MAX_UPLOAD)})
        assert r.status_code == 201, r.text
        held.append(r.headers["Location"])
        used, reserved = _probe(client)
        room = MAX_TOTAL - used - reserved
        r = client.post("/uploads", headers={**TUS, "Upload-Length": str(room - 1000)})
        assert r.status_code == 201, r.text
        held.append(r.headers["Location"])

        r = patch(client, loc, 1, b"q" * 1001)  # no length yet: the quota bounds the body
        assert r.status_code == 413, r.text
        assert r.json()["error"]["details"]["limit"] == "max_dataset_bytes_total"
        assert head_offset(client, loc) == 1
        assert tus_api.file(loc.rsplit("/", 1)[1]).stat().st_size == 1

        assert patch(client, loc, 1, b"q" * 600).status_code == 204
        assert _probe(client) == (used, reserved + room - 1000 + 600)  # its bytes count
        r = patch(client, loc, 601, b"q" * 401)
        assert r.status_code == 413 and head_offset(client, loc) == 601
        r = patch(client, loc, 601, b"", **{"Upload-Length": "1002"})  # 1 byte too many
        assert r.status_code == 413, r.text
        assert r.json()["error"]["details"]["limit"] == "max_dataset_bytes_total"
        assert "Upload-Defer-Length" in client.head(loc, headers=TUS).headers
        r = patch(client, loc, 601, b"q" * 400, **{"Upload-Length": "1001"})  # exactly fits
        assert r.status_code == 204 and r.headers["Upload-Offset"] == "1001"
        assert tus_api.file(loc.rsplit("/", 1)[1]).read_bytes() == b"q" * 1001
    finally:
        for x in (*held, loc):
            client.delete(x, headers=TUS)


def _probe(client) -> tuple[int, int]:
    """(bytes used by datasets, bytes reserved by uploads), as a POST that cannot fit reports
    them (the caller holds more than MAX_TOTAL - MAX_UPLOAD already)."""
    r = client.post("/uploads", headers={**TUS, "Upload-Length": str(MAX_UPLOAD)})
    assert r.status_code == 413, r.text
    d = r.json()["error"]["details"]
    return d["used"], d["reserved"]
