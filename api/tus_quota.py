"""The storage quota (max_dataset_bytes_total) of a tenant's tus uploads, reserved atomically.

What an upload holds is written in its own record, so that nothing is counted twice and nothing
outlives the upload:
- an Upload-Length, from the POST (or the PATCH that declares it) until the upload is removed:
  deleted, expired, or turned into a dataset (whose stored bytes count from then on);
- while the length is deferred, the bytes in its file, and while a PATCH holds its lock the
  offset that PATCH was granted (`reserve_to`): released when the PATCH ends, and lapsing with
  the lock's TTL (api/tus.LOCK_TTL_S) when the API process died mid-PATCH.

Checking a request against the sum and writing its reservation is one Lua script
(lua/upload_reserve.lua), so two requests of one tenant, in one API process or several,
cannot both pass on the same free bytes (a check then a write could). The script gets the
tenant's upload ids as read here and answers `retry` when the set changed meanwhile. The
stored datasets' bytes (and those datasets being written hold) are read just before, under
the tenant's reservation lock (api/quota_lock.py), which a dataset's reservation takes too:
so an upload and a dataset cannot both pass on the same free bytes either. A dataset made
from an upload counts while its upload is still held, so that window counts twice rather
than not at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from api.errors import ApiError
from api.quota_lock import quota_lock
from api.tus import Uploads, tus_error
from tricklab.server import scripts

# Re-reads of the uploads set before giving up: each retry means another request of the
# tenant changed it in the instant between the read and the script.
RETRIES = 50


@dataclass
class Reserved:
    ok: bool  # False: the bytes asked for do not fit (create, length); nothing was written
    held: int  # bytes the tenant's other uploads hold
    room: int = 0  # what the quota leaves this upload (a deferred one: past its offset)
    granted: int = 0  # what this request may store ('grant'), or the bytes reserved
    stored: int = 0  # what the stored datasets and those being written take, as counted


def stored_bytes(store: Any, settings: Any, tenant: str) -> int:
    """Bytes the tenant's stored datasets take (api.quotas counts a dataset's the same way),
    and those its datasets being written hold (DatasetRepo.reserve)."""
    from api.routes.datasets import repo_of  # datasets imports api.tus: import here

    repo = repo_of(store, settings)
    # the reservations first: a dataset recorded between the two reads (which drops its
    # reservation) is then counted twice, never not at all
    pending = repo.pending_total(tenant)
    return repo.stored_total(tenant) + pending


def live_ids(uploads: Uploads, tenant: str) -> list[str]:
    """The tenant's upload ids, after removing the expired ones and repairing each idle one's
    offset to its file (Uploads.get does both): what the script then counts."""
    ids = []
    for uid in uploads.r.smembers(uploads.keys.uploads(tenant)):
        if uploads.get(tenant, str(uid)) is None:
            uploads.r.srem(uploads.keys.uploads(tenant), uid)
        else:
            ids.append(str(uid))
    return ids


def reserve(
    uploads: Uploads,
    tenant: str,
    mode: str,
    upload_id: str,
    nbytes: int,
    most: int,
    store: Any,
    settings: Any,
    *,
    token: str = "",
    fields: dict[str, object] | None = None,
) -> Reserved:
    """Run lua/upload_reserve.lua (`mode` create | length | grant; `most`: the quota) under
    the tenant's reservation lock, the datasets' bytes read inside it, and say what it
    reserved. 409 when the upload was deleted or its lock lost meanwhile (length, grant)."""
    with quota_lock(uploads.r, uploads.keys, tenant, _busy):
        stored = stored_bytes(store, settings, tenant)
        got = _run(uploads, tenant, mode, upload_id, nbytes, most - stored, token, fields)
    got.stored = stored
    return got


def uploads_held(uploads: Uploads, tenant: str, exclude: str = "") -> int:
    """What the tenant's uploads other than `exclude` hold of the quota, by the script's rules
    (the caller holds the tenant's reservation lock: api/quotas.reserve_dataset_storage)."""
    return _run(uploads, tenant, "count", exclude, 0, 0, "", None).held


def _busy(message: str) -> ApiError:
    return tus_error(503, "quota_busy", message, Retry_After="1")


def _run(
    uploads: Uploads,
    tenant: str,
    mode: str,
    upload_id: str,
    nbytes: int,
    left: int,
    token: str,
    fields: dict[str, object] | None,
) -> Reserved:
    """The script, again while the tenant's set of uploads changes under it."""
    script = scripts.register(uploads.r, "upload_reserve")
    keys = uploads.keys
    pairs = [str(x) for kv in (fields or {}).items() for x in kv]
    for _ in range(RETRIES):
        ids = live_ids(uploads, tenant)
        args: list[Any] = [mode, upload_id, token, left, nbytes, time.time(), len(ids), *ids]
        per_id = [k for i in ids for k in (keys.upload(i), keys.upload_lock(i))]
        got = script(
            keys=[keys.uploads(tenant), keys.uploads_expiry, keys.upload(upload_id),
                  keys.upload_lock(upload_id), *per_id],
            args=[*args, *pairs],
        )  # fmt: skip
        outcome = _s(got[0])
        if outcome == "retry":
            continue
        if outcome == "lost":
            raise tus_error(
                409,
                "upload_lock_lost",
                f"upload {upload_id} was deleted or taken over by another PATCH meanwhile; "
                "HEAD it for the offset",
            )
        if outcome == "over":
            return Reserved(False, int(got[1]))
        return Reserved(True, int(got[1]), int(got[2]), int(got[3]))
    raise tus_error(
        503,
        "uploads_busy",
        f"your uploads changed {RETRIES} times while this request counted them; retry",
        Retry_After="1",
    )


def quota_exceeded(stored: int, held: int, length: int, most: int) -> ApiError:
    """413 naming max_dataset_bytes_total, with what is used and reserved."""
    return tus_error(
        413,
        "quota_exceeded",
        f"your datasets use {stored} bytes and your unfinished uploads reserve {held}; "
        f"this {length} byte upload would pass the {most} byte limit "
        "(max_dataset_bytes_total); delete a dataset or an upload (DELETE /uploads/{id}) "
        "first",
        {
            "limit": "max_dataset_bytes_total",
            "used": stored,
            "reserved": held,
            "max_dataset_bytes_total": most,
        },
    )


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
