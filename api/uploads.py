"""Uploaded datasets: arrays in settings.datasets_dir/{id}.npz, metadata in Redis.

Keys (P = settings.key_prefix): P:ds:{id} hash {tenant, meta (JSON)}; P:t:{tenant}:datasets set.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

from tricklab.server.keyspace import Keyspace
from tricklab.server.records import iso

# No space left on the device, or the disk quota of the API's user is used up.
FULL = (errno.ENOSPC, errno.EDQUOT)


class StorageFull(Exception):
    """The artifact disk has no room for an upload (the partial file is already removed)."""

    def __init__(self, where: Path, err: OSError) -> None:
        super().__init__(f"no space left on the artifact disk ({where}): {err.strerror}")
        self.where = where


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
        return self.dir / f"{ds_id}.npz"

    def save(self, tenant: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict:
        """Write the arrays atomically (temp file + rename), then the metadata; undo on failure.

        Raises StorageFull when the disk (or a disk quota) is full; nothing is left behind.
        """
        final = self.path(meta["id"])
        tmp: str | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".upload-", suffix=".npz.tmp")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException as e:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if isinstance(e, OSError) and e.errno in FULL:
                raise StorageFull(self.dir, e) from e
            raise
        record = {**meta, "created_at": time.time()}
        try:
            with self.r.pipeline(transaction=True) as pipe:
                pipe.hset(
                    self.key(meta["id"]), mapping={"tenant": tenant, "meta": json.dumps(record)}
                )
                pipe.sadd(self.tenant_key(tenant), meta["id"])
                pipe.execute()
        except BaseException:
            final.unlink(missing_ok=True)
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

    def delete(self, ds_id: str, tenant: str) -> None:
        with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(self.key(ds_id))
            pipe.srem(self.tenant_key(tenant), ds_id)
            pipe.execute()
        self.path(ds_id).unlink(missing_ok=True)

    @staticmethod
    def _public(record: dict) -> dict:
        return {**record, "builtin": False, "created_at": iso(record.get("created_at"))}
