"""Worker heartbeats: which workers are alive, and what each said about itself (its
queues and GPUs), for /readyz, the queue choice of `device: auto` jobs and /metrics."""

from __future__ import annotations

import json
import time
from typing import Any

from tricklab.server.keyspace import Keyspace

INFO_TTL_S = 3600  # a worker's self-description outlives its heartbeats by this much


class Workers:
    def __init__(self, r: Any, keys: Keyspace) -> None:
        self.r = r
        self.keys = keys

    def beat(self, name: str, info: dict | None = None) -> None:
        """The worker `name` is alive now (and, with info, describes itself)."""
        with self.r.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.workers, {name: time.time()})
            if info is not None:
                pipe.hset(self.keys.worker(name), mapping={"info": json.dumps(info)})
                pipe.expire(self.keys.worker(name), INFO_TTL_S)
            pipe.execute()

    def alive(self, ttl_s: float) -> list[str]:
        """Names of the workers whose last heartbeat is younger than ttl_s."""
        return list(self.r.zrangebyscore(self.keys.workers, time.time() - ttl_s, "+inf"))

    def gone(self, name: str) -> None:
        self.r.zrem(self.keys.workers, name)

    def infos(self, names: list[str]) -> list[dict[str, Any]]:
        """What each named worker said about itself ({} when it said nothing readable)."""
        if not names:
            return []
        with self.r.pipeline(transaction=False) as pipe:
            for n in names:
                pipe.hget(self.keys.worker(n), "info")
            raws = pipe.execute()
        out: list[dict[str, Any]] = []
        for raw in raws:
            try:
                info = json.loads(raw) if raw else {}
            except ValueError:
                info = {}
            out.append(info if isinstance(info, dict) else {})
        return out
