"""A job's tags and notes (PATCH /jobs/{id}): the user's own labels, kept in the job hash.

`tags` is a JSON list in the record; each tag is also in a per-tenant set
(Keyspace.job_tag) so that GET /jobs?tag= reads one set instead of every record. The
record and the sets change in one MULTI/EXEC under WATCH of the job hash, so two
PATCHes racing cannot leave a set naming a job that no longer has the tag (a worker's
heartbeat touching the hash meanwhile only costs a retry). Input is validated by the
API; this module assumes clean tags.
"""

from __future__ import annotations

import json

import redis

from tricklab.server.keyspace import Keyspace
from tricklab.server.outcomes import JobNotFound

__all__ = ["MAX_NOTES", "MAX_TAG_LEN", "MAX_TAGS", "set_annotations", "tag_keys"]

MAX_TAGS = 32
MAX_TAG_LEN = 64
MAX_NOTES = 10_000
_RETRIES = 100


def tag_keys(keys: Keyspace, tenant: str, tags: list[str] | None) -> list[str]:
    """The index sets a job with these tags is in (what deleting a job must SREM it from)."""
    return [keys.job_tag(tenant, t) for t in tags or []]


def set_annotations(
    r: redis.Redis,
    keys: Keyspace,
    job_id: str,
    tenant: str,
    *,
    tags: list[str] | None = None,
    notes: str | None = None,
) -> None:
    """Replace the job's tags and/or notes (None leaves one as it is). JobNotFound when the
    job is missing or another tenant's."""
    key = keys.job(job_id)
    with r.pipeline(transaction=True) as pipe:
        for _ in range(_RETRIES):
            try:
                pipe.watch(key)
                owner, old_text = pipe.hmget(key, ["tenant", "tags"])
                if owner is None or owner != tenant:
                    raise JobNotFound(job_id)
                old = _tags_of(old_text)  # type: ignore[arg-type]  # decode_responses=True
                fields: dict[str, str] = {}
                if tags is not None:
                    fields["tags"] = json.dumps(tags)
                if notes is not None:
                    fields["notes"] = notes
                pipe.multi()
                if fields:
                    pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
                if tags is not None:
                    for t in set(old) - set(tags):
                        pipe.srem(keys.job_tag(tenant, t), job_id)
                    for t in set(tags) - set(old):
                        pipe.sadd(keys.job_tag(tenant, t), job_id)
                pipe.execute()
                return
            except redis.WatchError:
                continue
    raise RuntimeError(f"job {job_id}: the record kept changing; tags not written")


def _tags_of(text: str | None) -> list[str]:
    try:
        v = json.loads(text) if text else []
    except ValueError:
        return []
    return [t for t in v if isinstance(t, str)] if isinstance(v, list) else []
