"""Canonical spec hashes and the index that lets POST /jobs?reuse=true skip training.

spec_hash = sha256 of the validated spec's `model_dump(mode="json")` as JSON with
sorted keys and no whitespace: every field, defaults filled in, seed included,
so two specs that train the same job hash the same however they were written.

The index (tricklab.server.keyspace: reuse) is a zset per tenant and hash of job ids
(score 0, ids sort by time).
Forked jobs are not indexed: they start from another job's checkpoint, so the
same spec does not mean the same training.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tricklab.contract import JobStatus
from tricklab.server.store import Store


def spec_hash(spec: dict[str, Any]) -> str:
    """Hash of a spec dict that is already `JobSpec.model_dump(mode="json")`."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def register(store: Store, tenant: str, h: str, job_id: str) -> None:
    store.r.zadd(store.keys.reuse(tenant, h), {job_id: 0})


def find_succeeded(store: Store, tenant: str, h: str) -> dict[str, Any] | None:
    """The newest succeeded job of this tenant with this hash, or None."""
    ids = store.r.zrevrangebylex(store.keys.reuse(tenant, h), "+", "-", start=0, num=50)
    for job in store.get_jobs(ids):
        if job.get("status") == JobStatus.SUCCEEDED and job.get("tenant") == tenant:
            return job
    return None
