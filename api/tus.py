"""Resumable uploads (tus 1.0.0): records in Redis, files on disk, and what POST /datasets takes.

An upload is a hash P:upload:{id} (tenant, length, offset, metadata, filename, created_at,
expires_at; no length while it is deferred, tus creation-defer-length; reserve_to while a PATCH
of a deferred one holds quota, api/tus_quota.py) listed in the tenant's set P:t:{tenant}:uploads
and in the expiry index P:uploads,
plus a file settings.artifact_dir/uploads/{id} that grows as PATCHes land. A writer appends
and then records the new offset, so the record is never ahead of the disk; while no PATCH
holds the upload's lock the file's size is the truth (a writer that died between the two
steps left the file ahead), and reads repair the record to it.

The routes are api/routes/uploads.py; POST /datasets {"upload": id} calls take_upload and,
once the dataset is stored, release_upload.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import redis

from api.errors import ApiError
from tricklab.server.keyspace import Keyspace
from tricklab.server.records import new_id
from tricklab.server.store import Store
from tricklab.settings import Settings
from tricks.ingest.stored import sweep_staging

log = logging.getLogger("tricklab.api")

TUS_VERSION = "1.0.0"
RESUMABLE = {"Tus-Resumable": TUS_VERSION}  # on every tus response
EXTENSIONS = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum"
CHECKSUM_ALGORITHMS = ("sha1", "md5", "sha256")
# A PATCH renews its lock as bytes land; one that sends nothing for this long loses it.
LOCK_TTL_S = 30
MAX_METADATA_CHARS = 4096
_ID = re.compile(r"^u[0-9a-f]{28}$")
_META_KEY = re.compile(r"^[^\s,]+$")


class LockLost(Exception):
    """The upload's lock is no longer this writer's (terminated, expired, or taken over)."""


@dataclass
class Upload:
    id: str
    tenant: str
    length: int | None  # None: deferred (Upload-Defer-Length), set by a later PATCH
    offset: int
    metadata: str  # the Upload-Metadata header as sent (HEAD answers it back)
    filename: str
    created_at: float
    expires_at: float

    @property
    def complete(self) -> bool:
        return self.length is not None and self.offset >= self.length

    @property
    def expires_http(self) -> str:
        """Upload-Expires: an RFC 7231 date."""
        return formatdate(self.expires_at, usegmt=True)


def tus_error(
    status: int, code: str, message: str, details: object = None, **headers: str
) -> ApiError:
    """The error shape, with the Tus-Resumable header every tus response carries."""
    return ApiError(
        status, code, message, details, {"Tus-Resumable": TUS_VERSION, **_dashed(headers)}
    )


def _dashed(headers: dict[str, str]) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in headers.items()}


def parse_metadata(raw: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (a key alone: empty value).

    400 naming the header for anything else: a key with spaces, a repeated key, a value that
    is not base64 or not UTF-8 once decoded, a header over MAX_METADATA_CHARS.
    """
    if raw is None or not raw.strip():
        return {}
    if len(raw) > MAX_METADATA_CHARS:
        raise _bad_metadata(f"it is {len(raw)} characters, at most {MAX_METADATA_CHARS}")
    out: dict[str, str] = {}
    for pair in raw.split(","):
        parts = pair.strip().split(" ")
        if len(parts) > 2 or not _META_KEY.match(parts[0]):
            raise _bad_metadata(f"'{pair.strip()[:40]}' is not 'key base64value'")
        key = parts[0]
        if key in out:
            raise _bad_metadata(f"the key '{key[:40]}' appears twice")
        try:
            value = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
            out[key] = value.decode("utf-8")
        except (binascii.Error, ValueError):
            raise _bad_metadata(f"the value of '{key[:40]}' is not base64 of UTF-8 text") from None
    return out


def _bad_metadata(why: str) -> ApiError:
    return tus_error(
        400,
        "bad_request",
        f"Upload-Metadata: {why}",
        [{"loc": ["header", "Upload-Metadata"], "msg": why}],
    )


def filename_of(meta: dict[str, str]) -> str:
    """tus-js-client and Uppy send `filename` (Uppy also `name`); path parts are dropped."""
    name = meta.get("filename") or meta.get("name") or ""
    return name.replace("\\", "/").rsplit("/", 1)[-1][:255]


class Uploads:
    """The upload records and files of one deployment. Cheap to make; sync (Redis client)."""

    def __init__(self, r: redis.Redis, keys: Keyspace, root: Path, expiry_s: float) -> None:
        self.r = r
        self.keys = keys
        self.root = root
        self.expiry_s = expiry_s

    @classmethod
    def of(cls, store: Store, settings: Settings) -> Uploads:
        return cls(store.r, store.keys, settings.artifact_dir / "uploads", settings.upload_expiry_s)

    def path(self, upload_id: str) -> Path:
        return self.root / upload_id

    # ------------------------------------------------------------ records
    def create(
        self,
        tenant: str,
        length: int | None,
        metadata: str,
        filename: str,
        expires_in: float | None = None,
    ) -> Upload:
        """An empty file, then the record: a crash in between leaves only an orphan file,
        which sweep_expired removes. (One with a length is made by api/tus_create.py, whose
        quota script writes the record.)"""
        up, fields = self.prepare(tenant, length, metadata, filename, expires_in)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.upload(up.id), mapping=fields)  # type: ignore[arg-type]
            pipe.sadd(self.keys.uploads(tenant), up.id)
            pipe.zadd(self.keys.uploads_expiry, {up.id: up.expires_at})
            pipe.execute()
        return up

    def prepare(
        self,
        tenant: str,
        length: int | None,
        metadata: str,
        filename: str,
        expires_in: float | None = None,
    ) -> tuple[Upload, dict[str, object]]:
        """A new upload's empty file, and the fields of the record still to be written;
        it expires after the expiry period, or `expires_in` seconds (see renew)."""
        now = time.time()
        until = now + (self.expiry_s if expires_in is None else expires_in)
        up = Upload(new_id("u"), tenant, length, 0, metadata, filename, now, until)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path(up.id).open("xb").close()
        fields: dict[str, object] = {
            "tenant": tenant,
            "offset": 0,
            "metadata": metadata,
            "filename": filename,
            "created_at": now,
            "expires_at": up.expires_at,
        }
        if length is not None:
            fields["length"] = length
        return up, fields

    def get(self, tenant: str, upload_id: str) -> Upload | None:
        """The tenant's upload, or None (unknown, another tenant's, or expired: removed now).

        While no PATCH holds its lock, the offset is repaired to the file's size."""
        if not _ID.match(upload_id):
            return None
        h = self.r.hgetall(self.keys.upload(upload_id))
        if not h or h.get("tenant") != tenant:
            return None
        up = _record(upload_id, h)
        locked = self.r.exists(self.keys.upload_lock(upload_id))
        if up.expires_at <= time.time() and not locked:
            self.remove(upload_id, tenant)
            return None
        if not locked:
            self.settle(up)
        return up

    def settle(self, up: Upload) -> None:
        """Make the record's offset the file's size (capped at the length); a missing file
        is an empty one."""
        try:
            size = self.path(up.id).stat().st_size
        except FileNotFoundError:
            self.path(up.id).open("ab").close()
            size = 0
        if up.length is not None:
            size = min(size, up.length)
        if size != up.offset:
            log.warning("upload %s: offset %d repaired to the file's %d", up.id, up.offset, size)
            self.r.hset(self.keys.upload(up.id), "offset", size)
            up.offset = size

    def remove(self, upload_id: str, tenant: str) -> None:
        """Record, lock and file gone; a PATCH still writing loses its lock and stops."""
        with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.upload(upload_id), self.keys.upload_lock(upload_id))
            pipe.srem(self.keys.uploads(tenant), upload_id)
            pipe.zrem(self.keys.uploads_expiry, upload_id)
            pipe.execute()
        self.path(upload_id).unlink(missing_ok=True)

    def renew(self, up: Upload, token: str) -> None:
        """The upload expires a full expiry period from now (a creation-with-upload POST's
        upload, made to expire soon in case the process dies before its 201), if the lock is
        still `token`'s (so the record still exists); LockLost otherwise."""
        key = self.keys.upload_lock(up.id)
        until = time.time() + self.expiry_s
        with self.r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                if pipe.get(key) != token:
                    raise LockLost(up.id)
                pipe.multi()
                pipe.hset(self.keys.upload(up.id), "expires_at", until)
                pipe.zadd(self.keys.uploads_expiry, {up.id: until})
                pipe.execute()
            except redis.WatchError:
                raise LockLost(up.id) from None
        up.expires_at = until

    # ------------------------------------------------------------- writers
    def lock(self, upload_id: str) -> str | None:
        token = secrets.token_hex(8)
        ok = self.r.set(self.keys.upload_lock(upload_id), token, nx=True, ex=LOCK_TTL_S)
        return token if ok else None

    def unlock(self, upload_id: str, token: str) -> None:
        """Release the lock and, with it, the quota its PATCH was granted (reserve_to)."""
        key = self.keys.upload_lock(upload_id)
        with self.r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                if pipe.get(key) == token:
                    pipe.multi()
                    pipe.delete(key)
                    pipe.hdel(self.keys.upload(upload_id), "reserve_to")
                    pipe.execute()
            except redis.WatchError:
                pass  # someone else's lock by now: leave it

    def commit(
        self, upload_id: str, token: str, offset: int | None, length: int | None
    ) -> float | None:
        """Record `offset` (None: only renew the lock) if the lock is still `token`'s;
        LockLost otherwise. A finished upload is kept another expiry period for POST /datasets:
        the new expiry is returned then (None otherwise)."""
        key = self.keys.upload_lock(upload_id)
        until = None
        with self.r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                if pipe.get(key) != token:
                    raise LockLost(upload_id)
                pipe.multi()
                pipe.expire(key, LOCK_TTL_S)
                if offset is not None:
                    pipe.hset(self.keys.upload(upload_id), "offset", offset)
                    if length is not None and offset >= length:
                        until = time.time() + self.expiry_s
                        pipe.hset(self.keys.upload(upload_id), "expires_at", until)
                        pipe.zadd(self.keys.uploads_expiry, {upload_id: until})
                pipe.execute()
            except redis.WatchError:
                raise LockLost(upload_id) from None
        return until


def _record(upload_id: str, h: dict) -> Upload:
    return Upload(
        upload_id,
        h["tenant"],
        int(h["length"]) if h.get("length") not in (None, "") else None,
        int(h.get("offset") or 0),
        h.get("metadata") or "",
        h.get("filename") or "",
        float(h.get("created_at") or 0),
        float(h.get("expires_at") or 0),
    )


# ------------------------------------------------------------ for POST /datasets
def take_upload(store: Store, settings: Settings, tenant: str, upload_id: str) -> tuple[Path, str]:
    """The finished upload's file and its filename (from Upload-Metadata, or "").

    404 for an unknown or another tenant's id, 409 while bytes are missing. The file stays
    until release_upload (call it once the dataset is stored)."""
    up = Uploads.of(store, settings).get(tenant, upload_id)
    if up is None:
        raise ApiError(404, "not_found", f"no upload '{upload_id}'", {"upload": upload_id})
    if not up.complete:
        of = "an undeclared number of" if up.length is None else str(up.length)
        raise ApiError(
            409,
            "upload_incomplete",
            f"upload {upload_id} is incomplete: {up.offset} of {of} bytes received; "
            f"resume it with PATCH /uploads/{upload_id}",
            {"upload": upload_id, "offset": up.offset, "length": up.length},
        )
    return Uploads.of(store, settings).path(upload_id), up.filename


def release_upload(store: Store, settings: Settings, tenant: str, upload_id: str) -> None:
    """Delete the upload's file and record (nothing to do if it is already gone)."""
    uploads = Uploads.of(store, settings)
    h = uploads.r.hget(store.keys.upload(upload_id), "tenant") if _ID.match(upload_id) else None
    if h == tenant:
        uploads.remove(upload_id, tenant)


def sweep_expired(store: Store, settings: Settings, *, now: float | None = None) -> list[str]:
    """Remove every upload past its expiry that no PATCH is writing, and files with no record
    older than the expiry (a crash between file and record); returns the ids removed."""
    uploads = Uploads.of(store, settings)
    now = time.time() if now is None else now
    removed = []
    for uid in uploads.r.zrangebyscore(store.keys.uploads_expiry, "-inf", now):
        uid = str(uid)
        if uploads.r.exists(store.keys.upload_lock(uid)):
            continue
        tenant = uploads.r.hget(store.keys.upload(uid), "tenant")
        if tenant is None:
            uploads.r.zrem(store.keys.uploads_expiry, uid)
        else:
            uploads.remove(uid, str(tenant))
        removed.append(uid)
    if uploads.root.is_dir():
        for f in uploads.root.iterdir():
            try:
                old = f.stat().st_mtime < now - settings.upload_expiry_s
            except FileNotFoundError:
                continue
            if old and not uploads.r.exists(store.keys.upload(f.name)):
                f.unlink(missing_ok=True)
                removed.append(f.name)
    return removed


def start_sweeper(store: Store, settings: Settings) -> threading.Event | None:
    """sweep_expired, and the datasets directory's stale staging (what an ingest that
    crashed left, tricks.ingest.stored.sweep_staging), every settings.retention_interval_s
    in a daemon thread (the API's lifespan starts it next to the retention round); set the
    event to stop. None when 0.

    Its own thread rather than a step of tricklab.server.retention, which may not import
    api; every API process runs one, which is safe: removing an upload twice is a no-op."""
    interval = settings.retention_interval_s
    if interval <= 0:
        return None
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                if removed := sweep_expired(store, settings):
                    log.info("uploads: %d expired removed", len(removed))
                if staged := sweep_staging(settings.datasets_dir):
                    log.info("datasets: %d stale staging entries removed", len(staged))
            except Exception:  # Redis down, a file in use: the next round tries again
                log.exception("upload sweep failed")

    threading.Thread(target=loop, name="upload-sweep", daemon=True).start()
    return stop
