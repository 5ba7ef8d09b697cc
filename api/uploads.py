"""Uploaded datasets: arrays in settings.datasets_dir/{id}/ (tricks.uploads layout), metadata in Redis.

Keys (P = settings.key_prefix): P:ds:{id} hash {tenant, meta (JSON)}; P:t:{tenant}:datasets set;
P:t:{tenant}:datasets_pending hash {id: "bytes expires_at"}, what datasets being written reserve.
The arrays are written by tricks.ingest (a staging directory renamed into place) after
`reserve` has counted their bytes against the quota (one Lua script with the stored
datasets' and the other reservations' bytes, so two uploads cannot both take the same free
bytes); this repo records the meta once they are there, dropping the reservation in the same
transaction, and removes them again if that fails.
Older deployments stored {id}.npz; reading and deleting handle both layouts.
"""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path
from typing import Any

import redis

from api.errors import ApiError
from tricklab.server import scripts
from tricklab.server.keyspace import Keyspace
from tricklab.server.records import iso
from tricks.uploads import remove_stored

# No space left on the device, or the disk quota of the API's user is used up.
FULL = (errno.ENOSPC, errno.EDQUOT)
# A reservation outlives the write it is for by at most this: it lapses when the API process
# writing the dataset died (a 1 GiB upload is parsed in well under a minute).
RESERVE_TTL_S = 1800
RETRIES = 50  # re-reads of the datasets set when it changed between the read and the script


class StorageFull(Exception):
    """The artifact disk has no room for an upload (the partial files are already removed)."""

    def __init__(self, where: Path, err: OSError) -> None:
        super().__init__(f"no space left on the artifact disk ({where}): {err.strerror}")
        self.where = where


def is_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in FULL


class DatasetRepo:
    def __init__(self, r: redis.Redis, prefix: str, datasets_dir: Path) -> None:
        self.r = r
        self.keys = Keyspace(prefix)
        self.dir = datasets_dir

    def key(self, ds_id: str) -> str:
        return self.keys.dataset(ds_id)

    def tenant_key(self, tenant: str) -> str:
        return self.keys.datasets(tenant)

    def path(self, ds_id: str) -> Path:
        """The dataset's directory (the current layout)."""
        return self.dir / ds_id

    def reserve(self, tenant: str, ds_id: str, nbytes: int, limit: int) -> tuple[bool, int, int]:
        """Hold `nbytes` of the tenant's quota for dataset `ds_id` while it is written, if they
        fit: (reserved, bytes stored, bytes other datasets being written hold). Atomic with
        the sums (lua/dataset_reserve.lua); `record` or `release` drops the reservation."""
        script = scripts.register(self.r, "dataset_reserve")
        for _ in range(RETRIES):
            ids = sorted(str(i) for i in self.r.smembers(self.tenant_key(tenant)))
            got = script(
                keys=[self.tenant_key(tenant), self.keys.datasets_pending(tenant),
                      *(self.key(i) for i in ids)],
                args=[ds_id, nbytes, limit, time.time(), RESERVE_TTL_S, len(ids), *ids],
            )  # fmt: skip
            outcome = got[0].decode() if isinstance(got[0], bytes) else str(got[0])
            if outcome != "retry":
                return outcome == "ok", int(got[1]), int(got[2])
        raise ApiError(
            503,
            "datasets_busy",
            f"your datasets changed {RETRIES} times while this upload counted them; retry",
            {"retry_after_s": 1},
            {"Retry-After": "1"},
        )

    def release(self, tenant: str, ds_id: str) -> None:
        """Drop dataset `ds_id`'s reservation (nothing when it has none)."""
        self.r.hdel(self.keys.datasets_pending(tenant), ds_id)

    def pending_total(self, tenant: str) -> int:
        """Bytes the tenant's datasets being written hold (expired reservations not counted)."""
        now, total = time.time(), 0
        for v in self.r.hvals(self.keys.datasets_pending(tenant)):
            bytes_, _, expires = str(v).partition(" ")
            if expires and float(expires) > now:
                total += int(float(bytes_))
        return total

    def record(self, tenant: str, meta: dict[str, Any]) -> dict:
        """Write the metadata of arrays already stored, dropping their reservation in the same
        transaction; on failure remove the arrays."""
        record = {**meta, "created_at": time.time()}
        try:
            with self.r.pipeline(transaction=True) as pipe:
                pipe.hset(
                    self.key(meta["id"]), mapping={"tenant": tenant, "meta": json.dumps(record)}
                )
                pipe.sadd(self.tenant_key(tenant), meta["id"])
                pipe.hdel(self.keys.datasets_pending(tenant), meta["id"])
                pipe.execute()
        except BaseException:
            remove_stored(self.dir, meta["id"])
            raise
        return self._public(record)

    def get(self, ds_id: str, tenant: str) -> dict | None:
        h = self.r.hgetall(self.key(ds_id))
        if not h or h.get("tenant") != tenant:
            return None
        return self._public(json.loads(h["meta"]))

    def list(self, tenant: str) -> list[dict]:
        ids = sorted(str(i) for i in self.r.smembers(self.tenant_key(tenant)))
        with self.r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hget(self.key(i), "meta")
            rows = pipe.execute()
        return [self._public(json.loads(m)) for m in rows if m]

    def stored_total(self, tenant: str) -> int:
        """Bytes the tenant's datasets take on disk (older records: their upload's bytes)."""
        return sum(int(d.get("stored_bytes") or d.get("bytes") or 0) for d in self.list(tenant))

    def delete(self, ds_id: str, tenant: str) -> None:
        with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(self.key(ds_id))
            pipe.srem(self.tenant_key(tenant), ds_id)
            pipe.execute()
        remove_stored(self.dir, ds_id)

    @staticmethod
    def _public(record: dict) -> dict:
        return {**record, "builtin": False, "created_at": iso(record.get("created_at"))}
