"""Uploaded datasets: arrays in settings.datasets_dir/{id}/ (tricks.uploads layout), metadata in Redis.

Keys (P = settings.key_prefix): P:ds:{id} hash {tenant, meta (JSON)}; P:t:{tenant}:datasets set.
The arrays are written by tricks.ingest (a staging directory renamed into place); this
repo records the meta once they are there, and removes them again if that fails.
Older deployments stored {id}.npz; reading and deleting handle both layouts.
"""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path
from typing import Any

import redis

from tricklab.server.keyspace import Keyspace
from tricklab.server.records import iso
from tricks.uploads import remove_stored

# No space left on the device, or the disk quota of the API's user is used up.
FULL = (errno.ENOSPC, errno.EDQUOT)


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

    def record(self, tenant: str, meta: dict[str, Any]) -> dict:
        """Write the metadata of arrays already stored; on failure remove the arrays."""
        record = {**meta, "created_at": time.time()}
        try:
            with self.r.pipeline(transaction=True) as pipe:
                pipe.hset(
                    self.key(meta["id"]), mapping={"tenant": tenant, "meta": json.dumps(record)}
                )
                pipe.sadd(self.tenant_key(tenant), meta["id"])
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
